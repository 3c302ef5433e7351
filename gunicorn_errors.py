"""What gunicorn refuses before the app sees it, answered in JSON like every other error.

gunicorn answers a request line over `limit_request_line` (4094 bytes), headers over its limits and
malformed requests itself, with an HTML page: the one place an API client still met HTML. Its
error writer, `gunicorn.util.write_error`, is the only hook it offers, so the web workers replace it
(gunicorn.conf.py, `post_worker_init`). The path may not have been read, so the answer must suit
either surface: it is the worker API's envelope, which is the user APIs' envelope with
`"success": false` added, so a client of either reads `error` and `request_id` where it expects them.
Outside the `app` package for the reason least_connections.py is.
"""
import json

from gunicorn import util


def write_json_error(sock, status_int, reason, mesg):
    from app.errors import HTTP_CODES
    from app.observability import new_request_id

    request_id = new_request_id()
    code = HTTP_CODES.get(status_int, ("HTTP_ERROR", reason))[0]
    body = json.dumps({"success": False, "error": {"code": code, "message": mesg or reason, "details": {}},
                       "request_id": request_id}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Request-ID: {request_id}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


def install() -> None:
    util.write_error = write_json_error
