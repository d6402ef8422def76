"""Speech engines behind one protocol (:mod:`inference_pod.engines.base`), one module per engine."""
