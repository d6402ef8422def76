"""``python -m tests.operator.poison_worker``: the real worker process, ``python -m inference_pod``,
whose synthetic engine kills its own process (SIGKILL) on a text that contains :data:`POISON`.

For the tests only: a job that stops every worker it lands on, as one that crashes the engine or
exhausts the pod's memory does. Any other text is synthesized as usual.
"""

from __future__ import annotations

import os
import signal
import sys

from inference_pod import __main__ as worker_main
from inference_pod.engines.base import AudioCallback, ProgressCallback, SynthesisOutcome, SynthesisRequest
from inference_pod.engines.synthetic import SyntheticEngine

POISON = "poison pill"

_synthesize = SyntheticEngine.synthesize


def _synthesize_or_die(
    self: SyntheticEngine,
    request: SynthesisRequest,
    progress: ProgressCallback,
    audio: AudioCallback | None = None,
) -> SynthesisOutcome:
    if POISON in request.text:
        os.kill(os.getpid(), signal.SIGKILL)
    return _synthesize(self, request, progress, audio)


SyntheticEngine.synthesize = _synthesize_or_die  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(worker_main.main())
