# MQTT over umqtt.simple with our own reconnect loop.
#
# Not umqtt.robust: its endless retries can block forever on a QoS 1 publish. Here every
# socket operation has a timeout, a failure closes the connection and returns False to
# the caller (who keeps the readings), and reconnection waits an exponential backoff.
#
# umqtt.simple's wait_msg() calls sock.setblocking(True) after each read, which removes
# any timeout; the socket is wrapped so that "blocking" means "blocking with a timeout".
# Commands are queued from the message callback and answered from poll(): publishing
# from inside the callback could swallow the PUBACK an outer publish() is waiting for.

from boucle_fw import protocol


class TimeoutSocket:
    """What umqtt.simple needs of a socket: a timeout that setblocking(True) keeps, and one
    write per MQTT packet.

    umqtt.simple writes a packet in three or four pieces (header, topic, packet id,
    payload). With Nagle's algorithm, on by default in lwIP as in Linux, a write that
    follows one the broker has not answered (any piece after the first, the packet after
    a QoS 0 publish or a PUBACK) waits for the broker's delayed ACK: a QoS 1 publish took
    44 ms on the loopback, and one in ten took 40 ms more after a health report. So
    TCP_NODELAY is set, and the small pieces are gathered to leave as one segment, before
    a payload (written as it is, not copied), the next read, the socket turning
    non-blocking, flush() and close().
    """

    def __init__(self, sock, timeout_s, raw=None):
        self.sock = sock
        self.raw = raw if raw is not None else sock
        self.timeout_s = timeout_s
        self.raw.settimeout(timeout_s)
        try:
            import socket
            self.raw.setsockopt(getattr(socket, "IPPROTO_TCP", 6), getattr(socket, "TCP_NODELAY", 1), 1)
        except Exception:  # a stack without the option: only the gathering helps then
            pass
        self.out = []

    def read(self, n):
        if self.out:
            self.flush()
        return self.sock.read(n)

    def write(self, data, n=None):
        if n is not None:
            data = data[:n]
        if isinstance(data, str):  # topics
            data = data.encode()
        elif not isinstance(data, bytes):
            data = bytes(data)  # a copy: umqtt.simple reuses its packet buffer
        if len(data) > 256:  # a payload goes as it is: no copy of the largest object
            self.flush()
            self.sock.write(data)
        else:
            self.out.append(data)
        return len(data)

    def flush(self):
        if self.out:
            data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
            self.out = []
            self.sock.write(data)

    def setblocking(self, flag):
        if not flag:
            self.flush()  # while writes still block (with the timeout)
        self.raw.settimeout(self.timeout_s if flag else 0)

    def close(self):
        try:
            self.flush()
        finally:
            self.sock.close()


class TlsContext:
    """Passed to MQTTClient(ssl=...): keeps the raw socket, whose timeout we set (an
    SSL socket has no settimeout on MicroPython)."""

    def __init__(self, ctx, timeout_s):
        self.ctx = ctx
        self.timeout_s = timeout_s
        self.raw = None

    def wrap_socket(self, sock, server_hostname=None):
        self.raw = sock
        sock.settimeout(self.timeout_s)
        return self.ctx.wrap_socket(sock, server_hostname=server_hostname)


def tls_context(ca_pem):
    """An SSLContext that verifies the broker against the CA in the config."""
    import ssl
    from binascii import a2b_base64
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    body = ca_pem.split("-----BEGIN CERTIFICATE-----")[1].split("-----END CERTIFICATE-----")[0]
    ctx.load_verify_locations(cadata=a2b_base64("".join(body.split())))
    return ctx


class MqttLink:
    """Connection to the broker for one device.

    client_factory(tls) -> an umqtt.simple MQTTClient (not connected). `ticks_ms` and
    `ticks_diff` are the clock (time.ticks_ms / time.ticks_diff on the device).
    """

    def __init__(self, client_factory, device_id, prefix, boot, fw, reset_cause, ticks_ms,
                 ticks_diff, timeout_s=10, keepalive_s=60, backoff_ms=(1000, 60000), wifi=None,
                 tls=None, retained=None):
        self.factory = client_factory
        self.device_id = device_id
        self.boot = boot
        self.fw = fw
        self.reset_cause = reset_cause
        self.ticks_ms = ticks_ms
        self.ticks_diff = ticks_diff
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s
        self.backoff_min, self.backoff_max = backoff_ms
        self.backoff = self.backoff_min
        self.wifi = wifi
        self.tls = tls
        self.retained = retained or []  # [(topic, payload)] after each connect (HA discovery)
        self.status_topic = protocol.topic(prefix, device_id, "status")
        self.cmd_topic = protocol.topic(prefix, device_id, "cmd")
        self.ack_topic = protocol.topic(prefix, device_id, "cmd/ack")
        self.client = None
        self.connected = False
        self.connects = 0
        self.failures = 0
        self.attempts = 0
        self.pings = 0
        self.last_error = None
        self.inbox = []
        self._failed_at = None  # ticks of the last failure; the next try waits _wait_ms
        self._wait_ms = 0
        self._last_out = 0

    # --- connection -------------------------------------------------------------------

    def connect(self):
        """Connected, or trying again once the backoff has passed. Never blocks longer
        than the socket timeout (plus the Wi-Fi join)."""
        if self.connected:
            return True
        if self._failed_at is not None and \
                self.ticks_diff(self.ticks_ms(), self._failed_at) < self._wait_ms:
            return False
        if self.wifi is not None and not self.wifi.ensure():
            self._failed("wifi down")
            return False
        try:
            self._open()
        except Exception as e:  # OSError, MQTTException, a short read
            self._close()
            self._failed(e)
            return False
        self.connected = True
        self.connects += 1
        self.backoff = self.backoff_min
        self._failed_at = None
        return True

    def _open(self):
        self.attempts += 1
        tls = TlsContext(self.tls, self.timeout_s) if self.tls is not None else None
        c = self.factory(tls)
        self.client = c
        c.set_callback(self._on_message)
        c.set_last_will(self.status_topic, protocol.encode_status(False), True, 1)
        try:
            c.connect(False, self.timeout_s)  # persistent session: commands wait for us
        except TypeError:  # umqtt.simple before 1.4: connect(clean_session) only
            c.connect(False)
        c.sock = TimeoutSocket(c.sock, self.timeout_s, tls.raw if tls is not None else None)
        c.publish(self.status_topic,
                  protocol.encode_status(True, self.boot, self.fw, self.reset_cause), True, 1)
        c.subscribe(self.cmd_topic, 1)
        for topic, payload in self.retained:
            c.publish(topic, payload, True, 1)
        self._last_out = self.ticks_ms()

    def _failed(self, error):
        self.failures += 1
        self.last_error = str(error)
        self._failed_at = self.ticks_ms()
        self._wait_ms = self.backoff
        self.backoff = min(self.backoff * 2, self.backoff_max)

    def _close(self):
        c = self.client
        self.client = None
        self.connected = False
        if c is not None and c.sock is not None:
            try:
                c.sock.close()
            except Exception:
                pass

    def drop(self, error="dropped"):
        """Give up the connection after an I/O error; the next connect() waits a backoff."""
        self._close()
        self._failed(error)

    # --- traffic ----------------------------------------------------------------------

    def publish(self, topic, payload, qos=0, retain=False):
        """True once sent (QoS 0) or acknowledged by the broker (QoS 1)."""
        if not self.connected:
            return False
        try:
            self.client.publish(topic, payload, retain, qos)
            self.client.sock.flush()  # QoS 0: nothing read back would send it
        except Exception as e:
            self.drop(str(e))
            return False
        self._last_out = self.ticks_ms()
        return True

    def _on_message(self, topic, msg):
        if topic == self.cmd_topic.encode() or topic == self.cmd_topic:
            self.inbox.append(bytes(msg))

    def poll(self, on_command=None):
        """Read what the broker sent (commands), answer them, ping when idle."""
        if not self.connected:
            return
        try:
            for _ in range(8):
                if self.client.check_msg() is None:
                    break
            if self.ticks_diff(self.ticks_ms(), self._last_out) > self.keepalive_s * 500:
                self.client.ping()
                self.pings += 1
                self._last_out = self.ticks_ms()
            self.client.sock.flush()  # the ping, and the PUBACK of a command just read
        except Exception as e:
            self.drop(str(e))
            return
        while self.inbox and on_command is not None:
            ack = on_command(self.inbox[0])
            if not self.publish(self.ack_topic, ack, 1, False):
                return  # the ack is sent again at the next poll
            self.inbox.pop(0)

    def close(self, orderly=True):
        """Disconnect; an orderly stop says offline itself (no last will then)."""
        if self.connected and orderly:
            try:
                self.client.publish(self.status_topic, protocol.encode_status(False), True, 1)
                self.client.disconnect()
            except Exception:
                pass
        self._close()
