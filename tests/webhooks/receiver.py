"""A webhook receiver for events-webhooks' tests.

It verifies every request with the `standardwebhooks` package (the Standard
Webhooks project's own Python library, an implementation independent of the
Rust one under test) and answers as it was told.

    python receiver.py            # prints "listening <port>", then one JSON line per request

Telling it how to answer: POST /_control with
    {"path": "/a", "secret": "whsec_..", "plan": [{"status": 500}, {"status": 200}],
     "delay": 0.0}
Requests to that path then get the plan's answers in order (the last one
repeats), each after `delay` seconds; an answer may carry "retry_after" (a
Retry-After header) and "body". Each request to a planned path prints
    {"path", "webhook_id", "timestamp", "signature", "verified", "error",
     "type", "data", "status", "received_at", "answered_at"}
A request to an unplanned path is answered 404 and printed too.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

PLANS = {}
LOCK = threading.Lock()
OUT = threading.Lock()


def emit(record):
    with OUT:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        received_at = time.time()
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        if self.path == "/_control":
            order = json.loads(body)
            with LOCK:
                PLANS[order["path"]] = {
                    "secret": order.get("secret"),
                    "plan": order.get("plan") or [{"status": 200}],
                    "delay": order.get("delay", 0.0),
                    "served": 0,
                }
            self.answer(204)
            return
        with LOCK:
            plan = PLANS.get(self.path)
            if plan is not None:
                step = plan["plan"][min(plan["served"], len(plan["plan"]) - 1)]
                plan["served"] += 1
        record = {
            "path": self.path,
            "webhook_id": self.headers.get("webhook-id"),
            "timestamp": self.headers.get("webhook-timestamp"),
            "signature": self.headers.get("webhook-signature"),
            "content_type": self.headers.get("content-type"),
            "received_at": received_at,
        }
        if plan is None:
            record.update(verified=False, error="no plan for this path", status=404)
            emit(record)
            self.answer(404, b"no plan")
            return
        try:
            parsed = Webhook(plan["secret"]).verify(body, dict(self.headers.items()))
            record.update(verified=True, error=None, type=parsed.get("type"), data=parsed.get("data"),
                          event_timestamp=parsed.get("timestamp"))
        except Exception as e:  # the library raises its own errors; any is a failure
            record.update(verified=False, error=f"{type(e).__name__}: {e}")
        if plan["delay"]:
            time.sleep(plan["delay"])
        status = step.get("status", 200)
        headers = []
        if "retry_after" in step:
            headers.append(("retry-after", str(step["retry_after"])))
        record.update(status=status, answered_at=time.time())
        emit(record)
        self.answer(status, step.get("body", "answered %d" % status).encode(), headers)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    emit({"listening": server.server_address[1]})
    # Stop when the test that started us goes away (stdin closes).
    threading.Thread(target=lambda: (sys.stdin.read(), server.shutdown()), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
