#!/usr/bin/env python3
"""Serve an embedded chDB (ClickHouse 26.x in-process) over ClickHouse's HTTP interface.

Dev/test only. Implements the subset of the HTTP protocol that the Rust
`clickhouse` crate (0.15.x) uses, so code written against a real server works
unchanged:

* POST / with the SQL in the body (or in `?query=`), `default_format`,
  `database`, `query_id`, `param_*` (URL or multipart/form-data body), any
  other URL parameter is applied as a ClickHouse setting for that query.
* INSERT ... FORMAT <fmt> in `?query=` with the data in the (possibly chunked)
  body, optionally in ClickHouse's compressed-block framing (`decompress=1`,
  LZ4 or none, CityHash128 checksum verified).
* Users `default` (no password), `readonly_user` (readonly=1) and
  `password_user`, given by X-ClickHouse-User/X-ClickHouse-Key, HTTP Basic or
  `user`/`password` URL parameters.
* Errors: non-200 status, `X-ClickHouse-Exception-Code`, body
  `Code: N. DB::Exception: ...`.
* GET / and GET /ping answer "Ok.\\n".

Every request runs on its own short-lived chDB connection (cheap, ~1 ms) so
per-request settings and readonly mode are enforced by the engine itself and
never leak between requests; one extra connection is held for the lifetime of
the process so background merges and mutations keep running.
"""

import argparse
import base64
import hmac
import json
import logging
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import chdb
import lz4.block
from clickhouse_cityhash.cityhash import CityHash128

# name -> (password, readonly level)
USERS = {
    "default": ("", 0),
    "readonly_user": ("readonly-pass", 1),
    "password_user": ("password-pass", 0),
}

# URL parameters that belong to the HTTP interface itself, not to settings.
HTTP_PARAMS = {
    "query", "database", "default_format", "query_id", "session_id",
    "session_timeout", "session_check", "compress", "decompress", "user",
    "password", "quota_key", "buffer_size", "wait_end_of_query", "role",
    "client_protocol_version", "stacktrace", "http_headers_progress_interval_ms",
}

# ClickHouse's exceptionCodeToHTTPStatus, keyed by error name.
STATUS_BY_NAME = {}
for _n in ("REQUIRED_PASSWORD",):
    STATUS_BY_NAME[_n] = 401
for _n in ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED",
           "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"):
    STATUS_BY_NAME[_n] = 403
for _n in ("CANNOT_PARSE_TEXT", "CANNOT_PARSE_ESCAPE_SEQUENCE",
           "CANNOT_PARSE_QUOTED_STRING", "CANNOT_PARSE_DATE",
           "CANNOT_PARSE_DATETIME", "CANNOT_PARSE_NUMBER",
           "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING", "CANNOT_PARSE_IPV4",
           "CANNOT_PARSE_IPV6", "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
           "CANNOT_PARSE_UUID", "DUPLICATE_COLUMN", "ILLEGAL_COLUMN",
           "UNKNOWN_ELEMENT_IN_AST", "UNKNOWN_TYPE_OF_AST_NODE",
           "THERE_IS_NO_COLUMN", "TOO_DEEP_AST", "TOO_BIG_AST",
           "UNEXPECTED_AST_STRUCTURE", "SYNTAX_ERROR", "INCORRECT_DATA",
           "TYPE_MISMATCH", "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
           "CANNOT_PARSE_BOOL", "BAD_ARGUMENTS"):
    STATUS_BY_NAME[_n] = 400
for _n in ("UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER",
           "UNKNOWN_TYPE", "UNKNOWN_STORAGE", "UNKNOWN_DATABASE",
           "UNKNOWN_SETTING", "UNKNOWN_DIRECTION_OF_SORTING",
           "UNKNOWN_AGGREGATE_FUNCTION", "UNKNOWN_FORMAT",
           "UNKNOWN_DATABASE_ENGINE", "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE"):
    STATUS_BY_NAME[_n] = 404
STATUS_BY_NAME.update({
    "QUERY_IS_TOO_LARGE": 413, "NOT_IMPLEMENTED": 501, "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503, "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408, "CANNOT_SCHEDULE_TASK": 503,
})

CODE_RE = re.compile(r"Code: (\d+)\.")
NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)(?: \(version [^)]*\))?\s*$")
INSERT_FORMAT_RE = re.compile(
    r"^\s*(INSERT\s+INTO\s.*?)\s+FORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL)
INSERT_VALUES_RE = re.compile(
    r"^\s*(INSERT\s+INTO\s.*?)\s+VALUES\s*$", re.IGNORECASE | re.DOTALL)
TRAILING_FORMAT_RE = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)
SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

COMPRESSION_NONE = 0x02
COMPRESSION_LZ4 = 0x82
COMPRESSION_ZSTD = 0x90
MAX_BLOCK = 1 << 30

log = logging.getLogger("chdb-front")


class ChError(Exception):
    """An error to report in ClickHouse's shape."""

    def __init__(self, code, name, message, status=None):
        super().__init__(message)
        self.code = int(code)
        self.name = name
        self.text = f"Code: {self.code}. DB::Exception: {message}. ({name})"
        self.status = status or STATUS_BY_NAME.get(name, 500)

    @classmethod
    def from_engine(cls, exc):
        raw = str(exc)
        m = CODE_RE.search(raw)
        if not m:
            err = cls(1001, "STD_EXCEPTION", raw.strip().rstrip("."))
            return err
        text = raw[m.start():].strip()
        nm = NAME_RE.search(text)
        name = nm.group(1) if nm else ""
        err = cls.__new__(cls)
        Exception.__init__(err, text)
        err.code = int(m.group(1))
        err.name = name
        err.text = text
        err.status = STATUS_BY_NAME.get(name, 500)
        return err


def quote_string(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_ident(name):
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def content_type_for(fmt):
    f = fmt.lower()
    if f.startswith("rowbinary") or f in ("native", "parquet", "arrow", "arrowstream", "orc", "avro"):
        return "application/octet-stream"
    if f.startswith("json"):
        return "application/json; charset=UTF-8"
    if f.startswith("tabseparated") or f.startswith("tsv"):
        return "text/tab-separated-values; charset=UTF-8"
    if f.startswith("csv"):
        return "text/csv; charset=UTF-8; header=absent"
    return "text/plain; charset=UTF-8"


def parse_multipart(body, content_type):
    """Return {name: value} from a multipart/form-data body (text fields only)."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ChError(36, "BAD_ARGUMENTS", "multipart/form-data without boundary")
    boundary = b"--" + m.group(1).encode()
    fields = {}
    for part in body.split(boundary)[1:]:
        if part.startswith(b"--"):
            break
        part = part[2:] if part.startswith(b"\r\n") else part
        head, sep, value = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if value.endswith(b"\r\n"):
            value = value[:-2]
        nm = re.search(rb'name="([^"]*)"', head)
        if nm:
            fields[nm.group(1).decode()] = value.decode("utf-8")
    return fields


class BodyReader:
    """Reads a request body given Content-Length or chunked encoding."""

    def __init__(self, rfile, headers):
        self.rfile = rfile
        te = (headers.get("Transfer-Encoding") or "").lower()
        self.chunked = "chunked" in te
        cl = headers.get("Content-Length")
        self.remaining = int(cl) if (cl and not self.chunked) else 0
        self.chunk_left = 0
        self.done = not self.chunked and self.remaining == 0

    def read(self, n=1 << 20):
        """Return up to n bytes, b'' at the end of the body."""
        if self.done:
            return b""
        if not self.chunked:
            data = self.rfile.read(min(n, self.remaining))
            if not data:
                raise ChError(33, "CANNOT_READ_ALL_DATA", "Unexpected end of request body")
            self.remaining -= len(data)
            if self.remaining == 0:
                self.done = True
            return data
        while self.chunk_left == 0:
            line = self.rfile.readline(65537)
            if not line:
                raise ChError(33, "CANNOT_READ_ALL_DATA", "Unexpected end of chunked body")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers
                    t = self.rfile.readline(65537)
                    if t in (b"\r\n", b"\n", b""):
                        break
                self.done = True
                return b""
            self.chunk_left = size
        data = self.rfile.read(min(n, self.chunk_left))
        if not data:
            raise ChError(33, "CANNOT_READ_ALL_DATA", "Unexpected end of chunked body")
        self.chunk_left -= len(data)
        if self.chunk_left == 0:
            self.rfile.readline(3)  # CRLF after the chunk
        return data

    def read_all(self):
        parts = []
        while True:
            d = self.read()
            if not d:
                return b"".join(parts)
            parts.append(d)

    def drain(self):
        try:
            while self.read():
                pass
        except Exception:  # noqa: BLE001 - best effort
            pass


class BlockDecompressor:
    """ClickHouse compressed-block framing: checksum(16) method(1) csize(4) usize(4) data."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data
        out = []
        while len(self.buf) >= 25:
            method = self.buf[16]
            csize, usize = struct.unpack_from("<II", self.buf, 17)
            if csize < 9 or csize > MAX_BLOCK or usize > MAX_BLOCK:
                raise ChError(271, "CANNOT_DECOMPRESS",
                              f"Too large size of compressed block: {csize}")
            if len(self.buf) < 16 + csize:
                break
            block = bytes(self.buf[16:16 + csize])
            expected = bytes(self.buf[:16])
            h = CityHash128(block)
            actual = (h >> 64).to_bytes(8, "little") + (h & ((1 << 64) - 1)).to_bytes(8, "little")
            if not hmac.compare_digest(expected, actual):
                raise ChError(40, "CHECKSUM_DOESNT_MATCH",
                              "Checksum doesn't match: corrupted data. Reference: "
                              f"{expected.hex()}. Actual: {actual.hex()}. "
                              f"Size of compressed block: {csize}")
            payload = block[9:]
            if method == COMPRESSION_LZ4:
                try:
                    out.append(lz4.block.decompress(payload, uncompressed_size=usize))
                except Exception as e:  # noqa: BLE001
                    raise ChError(271, "CANNOT_DECOMPRESS", f"Cannot decompress LZ4 block: {e}")
            elif method == COMPRESSION_NONE:
                out.append(payload)
            else:
                raise ChError(89, "UNKNOWN_COMPRESSION_METHOD",
                              f"Unknown compression method: {method:#x} (only LZ4 and NONE supported by chdb-front)")
            del self.buf[:16 + csize]
        return out

    def finish(self):
        if self.buf:
            raise ChError(33, "CANNOT_READ_ALL_DATA",
                          f"Incomplete compressed block at end of body ({len(self.buf)} bytes left)")


class Front:
    def __init__(self, data_dir):
        self.data_dir = os.path.abspath(data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        # Held for the whole life of the process: keeps the engine (and its
        # background merges/mutations) alive between requests.
        self.anchor = chdb.connect(self.data_dir)
        self.version = self.anchor.query("SELECT version()", "TabSeparated").bytes().decode().strip()
        self.timezone = self.anchor.query("SELECT timezone()", "TabSeparated").bytes().decode().strip()

    def connect(self, readonly):
        # mutations_sync=0 first: a real server does not wait for mutations.
        cs = f"{self.data_dir}?mutations_sync=0"
        if readonly:
            cs += f"&readonly={readonly}"
        try:
            return chdb.connect(cs)
        except Exception as e:  # noqa: BLE001
            raise ChError.from_engine(e)

    def close(self):
        try:
            self.anchor.close()
        except Exception:  # noqa: BLE001
            pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chdb-front"
    sys_version = ""

    def version_string(self):
        return "chdb-front"
    front = None  # set in main()

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, fmt, *args):  # silence default stderr logging
        pass

    # ---- responses -------------------------------------------------------
    def send_body(self, status, body, headers):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close" if self.close_connection else "Keep-Alive")
        if not self.close_connection:
            self.send_header("Keep-Alive", "timeout=30")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error_ch(self, err, query_id):
        text = err.text.rstrip()
        if "(version " not in text:
            text += f" (version {self.front.version} (chdb-front))"
        body = (text + "\n").encode()
        self.send_body(err.status, body, {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(err.code),
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Server-Display-Name": "chdb-front",
        })

    # ---- entry points ----------------------------------------------------
    def do_GET(self):
        self.handle_request(is_get=True)

    def do_HEAD(self):
        self.handle_request(is_get=True)

    def do_POST(self):
        self.handle_request(is_get=False)

    def handle_request(self, is_get):
        start = time.monotonic()
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        body = BodyReader(self.rfile, self.headers) if not is_get else None
        user = "-"
        status, code = 200, 0
        self._sql = ""
        try:
            if url.path in ("/ping",) or (url.path == "/" and is_get and "query" not in params):
                if body:
                    body.drain()
                self.send_body(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                return
            if url.path not in ("/", "/query"):
                if body:
                    body.drain()
                raise ChError(0, "UNKNOWN", f"There is no handle {url.path}", status=404)
            user, readonly = self.authenticate(params, body)
            if is_get and readonly == 0:
                readonly = 2  # GET requests are readonly in ClickHouse
            status_body, headers = self.run(params, body, readonly, query_id)
            self.send_body(200, status_body, headers)
        except ChError as err:
            status, code = err.status, err.code
            if user not in ("-", "default"):
                # chDB runs everything as its internal `default` user.
                err.text = err.text.replace("DB::Exception: default: ", f"DB::Exception: {user}: ", 1)
            if body:
                body.drain()
            self.send_error_ch(err, query_id)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            status = -1
        except Exception as e:  # noqa: BLE001 - never crash the server thread
            log.exception("internal error")
            err = ChError(1001, "STD_EXCEPTION", f"chdb-front internal error: {type(e).__name__}: {e}")
            status, code = err.status, err.code
            if body:
                body.drain()
            self.close_connection = True
            try:
                self.send_error_ch(err, query_id)
            except OSError:
                pass
        finally:
            log.info("%s %s user=%s status=%s code=%s ms=%.1f query_id=%s sql=%r",
                     self.client_address[0], self.command, user, status, code,
                     (time.monotonic() - start) * 1000, query_id,
                     " ".join(self._sql.split())[:300])

    # ---- auth ------------------------------------------------------------
    def authenticate(self, params, body):
        hdr_user = self.headers.get("X-ClickHouse-User")
        hdr_key = self.headers.get("X-ClickHouse-Key")
        auth = self.headers.get("Authorization")
        user = password = None
        if (hdr_user is not None or hdr_key is not None) and auth:
            raise ChError(516, "AUTHENTICATION_FAILED",
                          "Invalid authentication: it is not allowed to use X-ClickHouse HTTP headers "
                          "and Authorization HTTP header simultaneously")
        if hdr_user is not None or hdr_key is not None:
            user, password = hdr_user, hdr_key
        elif auth:
            if not auth.lower().startswith("basic "):
                raise ChError(516, "AUTHENTICATION_FAILED",
                              "Invalid authentication: only Basic authentication is supported by chdb-front")
            try:
                decoded = base64.b64decode(auth[6:].strip()).decode("utf-8")
            except Exception:  # noqa: BLE001
                raise ChError(516, "AUTHENTICATION_FAILED", "Invalid authentication: malformed Basic credentials")
            user, _, password = decoded.partition(":")
        else:
            user, password = params.get("user"), params.get("password")
        user = user or "default"
        password = password or ""
        entry = USERS.get(user)
        if entry is None or not hmac.compare_digest(entry[0].encode(), password.encode()):
            raise ChError(516, "AUTHENTICATION_FAILED",
                          f"{user}: Authentication failed: password is incorrect, "
                          "or there is no user with such name")
        return user, entry[1]

    # ---- query execution -------------------------------------------------
    def run(self, params, body, readonly, query_id):
        ctype = (self.headers.get("Content-Type") or "").lower()
        qparams = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        query_param = params.get("query")
        data_body = None
        if body is not None and ctype.startswith("multipart/form-data"):
            fields = parse_multipart(body.read_all(), self.headers.get("Content-Type"))
            for k, v in fields.items():
                if k.startswith("param_"):
                    qparams[k[6:]] = v
            sql = fields.get("query", query_param or "")
        elif query_param is not None:
            sql = query_param
            data_body = body  # INSERT data, or the rest of the query
        else:
            raw = body.read_all() if body is not None else b""
            if params.get("decompress") in ("1", "true"):
                dec = BlockDecompressor()
                raw = b"".join(dec.feed(raw))
                dec.finish()
            sql = raw.decode("utf-8", errors="replace")

        self._sql = sql
        conn = self.front.connect(readonly)
        try:
            self.apply_settings(conn, params)
            db = params.get("database")
            if db:
                self.engine(conn.query, f"USE {quote_ident(db)}", "TabSeparated")

            if data_body is not None:
                m = INSERT_FORMAT_RE.match(sql) or INSERT_VALUES_RE.match(sql)
                if m:
                    fmt = m.group(2) if m.re is INSERT_FORMAT_RE else "Values"
                    written = self.stream_insert(conn, m.group(1), fmt, data_body,
                                                 params.get("decompress") in ("1", "true"))
                    return b"", self.headers_for("TabSeparated", query_id, written_rows=written)
                rest = data_body.read_all()
                if params.get("decompress") in ("1", "true"):
                    dec = BlockDecompressor()
                    rest = b"".join(dec.feed(rest))
                    dec.finish()
                if rest:
                    sql = sql + rest.decode("utf-8", errors="replace")
                    self._sql = sql

            if not sql.strip():
                raise ChError(62, "SYNTAX_ERROR", "Empty query")
            fmt = params.get("default_format") or "TabSeparated"
            m = TRAILING_FORMAT_RE.search(sql)
            shown_fmt = m.group(1) if m else fmt
            res = self.engine(conn.query, sql, fmt, params=qparams)
            out = bytes(res.bytes())
            return out, self.headers_for(shown_fmt, query_id, res=res, result_bytes=len(out))
        finally:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    @staticmethod
    def engine(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ChError:
            raise
        except Exception as e:  # noqa: BLE001 - chdb raises ChdbError/RuntimeError
            raise ChError.from_engine(e)

    def apply_settings(self, conn, params):
        for name, value in params.items():
            if name in HTTP_PARAMS or name.startswith("param_"):
                continue
            if not SETTING_NAME_RE.match(name):
                raise ChError(115, "UNKNOWN_SETTING", f"Unknown setting '{name}'")
            # The engine enforces readonly (Code 164) and unknown names (115).
            self.engine(conn.query, f"SET {name} = {quote_string(value)}", "TabSeparated")

    def stream_insert(self, conn, insert_head, fmt, body, decompress):
        try:
            inserter = conn.send_insert(insert_head, fmt)
        except Exception as e:  # noqa: BLE001
            raise ChError.from_engine(e)
        dec = BlockDecompressor() if decompress else None
        try:
            while True:
                chunk = body.read()
                if not chunk:
                    break
                pieces = dec.feed(chunk) if dec else [chunk]
                for p in pieces:
                    if p:
                        inserter.append(p)
            if dec:
                dec.finish()
            result = inserter.finish()
            return result.rows_written
        except ChError:
            try:
                inserter.cancel()
            except Exception:  # noqa: BLE001
                pass
            raise
        except Exception as e:  # noqa: BLE001
            try:
                inserter.cancel()
            except Exception:  # noqa: BLE001
                pass
            raise ChError.from_engine(e)

    def headers_for(self, fmt, query_id, res=None, written_rows=0, result_bytes=0):
        summary = {
            "read_rows": str(res.rows_read() if res else 0),
            "read_bytes": str(res.bytes_read() if res else 0),
            "written_rows": str(written_rows),
            "written_bytes": "0",
            "total_rows_to_read": "0",
            "result_rows": str(res.rows_read() if res else 0),
            "result_bytes": str(result_bytes),
            "elapsed_ns": str(int((res.elapsed() if res else 0) * 1e9)),
        }
        return {
            "Content-Type": content_type_for(fmt),
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.front.timezone,
            "X-ClickHouse-Server-Display-Name": "chdb-front",
            "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":")),
        }


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=28123)
    ap.add_argument("--data", required=True, help="chDB data directory")
    ap.add_argument("--log", required=True, help="request log file")
    args = ap.parse_args()

    logging.basicConfig(filename=args.log, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    front = Front(args.data)
    Handler.front = front
    try:
        httpd = Server((args.host, args.port), Handler)
    except OSError as e:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, e)
        print(f"chdb-front: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        front.close()
        return 1

    def stop(signum, _frame):
        log.info("signal %s: shutting down", signum)
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("chdb-front listening on %s:%s data=%s engine=%s", args.host, args.port,
             front.data_dir, front.version)
    try:
        httpd.serve_forever(poll_interval=0.5)
    finally:
        httpd.server_close()
        front.close()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
