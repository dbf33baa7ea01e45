"""Send make_thumbnail to the Node service and wait for its result (stored by tq in Redis)."""

from tasks import make_thumbnail

message = make_thumbnail.send("/img/cat.png", width=320)
print("sent", message.message_id, flush=True)
print("result:", message.get_result(block=True, timeout=10_000), flush=True)
