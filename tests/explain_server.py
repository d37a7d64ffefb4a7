"""A small local stand-in for an OpenAI-compatible server (llama.cpp, vLLM, Ollama): it answers
``POST /v1/chat/completions`` from a script of replies and records the prompts it was sent."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StandIn:
    """``replies``: a list consumed one per request; each is a str (the completion's text),
    ``("raw", bytes)`` (the body as is), ``("status", code)`` (an HTTP error) or
    ``("sleep", seconds, text)``. The last reply repeats."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.prompts: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.prompts.append(body["messages"][0]["content"])
                reply = (stand_in.replies.pop(0) if len(stand_in.replies) > 1
                         else stand_in.replies[0])
                if isinstance(reply, tuple) and reply[0] == "sleep":
                    time.sleep(reply[1])
                    reply = reply[2]
                if isinstance(reply, tuple) and reply[0] == "status":
                    self.send_response(reply[1])
                    self.end_headers()
                    return
                data = (reply[1] if isinstance(reply, tuple) else json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode())
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        return False
