"""The Python half: a Dramatiq service sharing Redis queues and results with the tq service.

What must match the Node side (src/service.ts): the Redis database, the broker namespace,
queue names, actor names, argument shapes and the results namespace. Both read them from the
same environment variables, with the same defaults.

    pip install -r requirements.txt
    dramatiq tasks --queues reports     # the Python worker: only the queue Python owns
    python send_thumbnail.py            # a Python producer for the Node actor
"""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

broker = RedisBroker(url=REDIS_URL, namespace=os.environ.get("REDIS_NAMESPACE", "dramatiq"))
backend = RedisBackend(url=REDIS_URL, namespace=os.environ.get("RESULTS_NAMESPACE", "dramatiq-results"))
broker.add_middleware(Results(backend=backend))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="reports", max_retries=3)
def build_report(account_id, format="pdf"):
    """Runs here, in Python. tq sends it with kwargs={"format": ...}."""
    print(f"build_report({account_id!r}, format={format!r}) running in Python", flush=True)


@dramatiq.actor(queue_name="thumbnails", store_results=True)
def make_thumbnail(path, width=256):
    """Runs in the Node service. Declared here so Python code can send it; this worker does not
    consume the `thumbnails` queue (see --queues above), so the body never runs here."""
    raise NotImplementedError("make_thumbnail runs in the Node service")
