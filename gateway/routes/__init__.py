"""The gateway's routes by concern: the workflow API (:mod:`.workflows`), monitoring
(:mod:`.monitoring`) and operations (:mod:`.operations`), each an ``APIRouter``."""
