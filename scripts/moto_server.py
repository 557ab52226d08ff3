"""moto_server for Weir's tests, with create-only PUTs made atomic as they are on S3.

moto (5.2.5) answers `If-None-Match: *` by checking whether the key exists and then storing the
object, in two steps without a lock, on a threaded server. Two concurrent create-only PUTs of
one key can therefore both succeed, which real S3 never allows: Weir's concurrency tests saw
two writers both create lease epoch 1 of one partition. This wrapper serialises moto's object
PUTs and object POSTs (CompleteMultipartUpload also honours If-None-Match), so the
check-and-store is atomic, then runs moto's own server. Arguments are moto_server's.

Used by scripts/with-s3.sh: `.venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p PORT`.
"""

import functools
import sys
import threading

from moto import server
from moto.s3.responses import S3Response

_WRITES = threading.Lock()


def _serialised(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _WRITES:
            return method(*args, **kwargs)

    return wrapper


for _name in ("put_object", "_key_response_post"):
    if not hasattr(S3Response, _name):
        sys.exit(f"moto_server.py: moto has no S3Response.{_name}; update this wrapper")
    setattr(S3Response, _name, _serialised(getattr(S3Response, _name)))

if __name__ == "__main__":
    server.main()
