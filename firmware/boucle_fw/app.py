# Start-up on the board: config, boot counter, stores, sensors, link; then the loop
# (mains-powered) or one cycle per wake (deep sleep, battery bins).

import gc
import time

from boucle_fw import config as config_mod
from boucle_fw import kinds, ota, protocol
from boucle_fw import sensors as sensors_mod
from boucle_fw.accounting import CounterStore
from boucle_fw.buffer import ReadingBuffer
from boucle_fw.device import Device
from boucle_fw.timebase import Timebase

FW_VERSION = "0.1.0"


def build_sensors(cfg, settings):
    """[(type, driver)] from the config's sensors section (each type's descriptor builds it)."""
    return [(s["type"], sensors_mod.get(s["type"]).build(s, settings)) for s in cfg["sensors"]]


def _client_factory(cfg):
    from umqtt.simple import MQTTClient
    m = cfg["mqtt"]

    def make(tls):
        return MQTTClient(cfg["device_id"], m["host"], m["port"], m.get("username"),
                          m.get("password"), m["keepalive_s"], tls)
    return make


def _info(wifi, cause):
    def info():
        gc.collect()
        return {"heap_free": gc.mem_free(), "rssi": wifi.rssi(), "reset_cause": cause}
    return info


def run(root="/"):
    """Start the device from the files under root: config.json, buffer/, apps/."""
    import machine

    from boucle_fw.hw import system
    from boucle_fw.hw.mqtt import MqttLink, tls_context
    from boucle_fw.hw.wifi import Wifi

    cfg, errors = config_mod.load(root + "config.json")
    if errors:
        print("boucle: config.json is not valid; fix it and reset the board:")
        for e in errors:
            print("  " + e)
        return  # stay at the REPL: nothing to measure with a wrong config
    cause = system.reset_cause()
    nvs = system.Nvs()
    woke = cause == "deep_sleep"
    boot = system.next_boot(nvs, woke)
    rtc = system.RtcMemory()
    settings = system.Settings(nvs)
    sensors = build_sensors(cfg, settings)
    tb = Timebase(time.ticks_ms)
    b = cfg["buffer"]
    buf = ReadingBuffer(b["capacity"], b["ram"], b["segment"], root + "buffer")
    store = counter = None
    spec = kinds.get(sensors_mod.kind_of(cfg["sensors"][0]["type"])).COUNTER
    if spec is not None:  # a bin counts nothing, writes nothing to NVS
        section, units, _, seconds, _ = spec[1]
        # NVS key "energy" or "water"; its RTC memory cell the key's first letter ("e", as before)
        store = CounterStore(rtc.cell(spec[2][0]), nvs.cell(spec[2]), cfg[section][units], cfg[section][seconds])
        counter = store.restore()
    wifi = Wifi(cfg["wifi"]["ssid"], cfg["wifi"]["password"], cfg["wifi"]["reconnects"])
    retained = []
    if cfg["ha_discovery"]:
        from boucle_fw import discovery
        retained = discovery.messages(
            cfg["device_id"], protocol.topic(cfg["prefix"], cfg["device_id"], "telemetry"),
            protocol.topic(cfg["prefix"], cfg["device_id"], "status"),
            [s["type"] for s in cfg["sensors"]], FW_VERSION)
    m = cfg["mqtt"]
    link = MqttLink(_client_factory(cfg), cfg["device_id"], cfg["prefix"], boot, FW_VERSION, cause,
                    time.ticks_ms, time.ticks_diff, m["timeout_s"], m["keepalive_s"], wifi=wifi,
                    tls=tls_context(m["ca"]) if m.get("ca") else None, retained=retained)
    dev = Device(cfg, boot, tb, link, buf, sensors, counter, store, settings,
                 _info(wifi, cause), FW_VERSION)
    if woke:
        dev.seq = rtc.data.get("seq", 0)
    apps = root + "apps"
    if cfg["deep_sleep"]["enabled"]:
        return _wake(cfg, dev, rtc, wifi, machine, system, apps)
    _clock_from_rtc(dev, rtc)
    return _loop(cfg, dev, wifi, machine, system, apps, rtc)


def _clock_from_rtc(dev, rtc):
    """After a reset or a wake that kept RTC memory, the RTC kept its clock too (same power
    domain): readings are stamped at once instead of waiting for NTP. A board that reset
    itself because the Wi-Fi was gone would otherwise take readings it cannot place."""
    if rtc.data.get("unix") is None or dev.tb.synced:
        return
    from boucle_fw.timebase import ntp_to_unix
    dev.tb.sync(ntp_to_unix(time.time(), time.gmtime(0)[0]))
    dev.on_clock_synced()


def _sync_clock(dev, cfg, system, rtc=None):
    unix = system.ntp_unix(cfg["ntp"]["host"])
    if unix is None:
        return False
    first = not dev.tb.synced
    dev.tb.sync(unix)
    if first:
        dev.on_clock_synced()
    if rtc is not None and rtc.data.get("unix") is None:
        rtc.data["unix"] = True  # the RTC is set: a reset that keeps RTC memory keeps it
        rtc.save()
    return True


WDT_MS = 120000  # a loop turn blocks at most a Wi-Fi join, a socket timeout and NTP


def _loop(cfg, dev, wifi, machine, system, apps, rtc):
    # The watchdog is fed at every turn of the loop while the sensors answered within the
    # last three intervals: a loop wedged in a driver or a socket, or sensors gone for
    # three intervals, reset the board instead of leaving it there. Its timeout does not
    # follow the interval (set_interval may change that at any time; the ESP32's WDT
    # cannot be re-armed with another timeout).
    wdt = machine.WDT(timeout=WDT_MS)
    resync_ms = cfg["ntp"]["resync_s"] * 1000
    last_sync = None
    last_good = dev.tb.now_ms()
    while True:
        now = dev.tb.now_ms()
        tasks = dev.scheduler.due(now)
        if "sample" in tasks:
            due = last_sync is None or now - last_sync >= resync_ms or not dev.tb.synced
            if due and wifi.ensure() and _sync_clock(dev, cfg, system, rtc):
                last_sync = now
            sampled, delivered = dev.cycle()
            if sampled:
                last_good = now
                if delivered:
                    ota.mark_good(apps)
            if wifi.gave_up:
                print("boucle: Wi-Fi lost after %d attempts, resetting" % wifi.failures)
                dev.shutdown()
                machine.reset()
            # After the cycle, which allocates (a reading, its payload); the idle turns
            # between cycles allocate next to nothing and need no collection each second.
            gc.collect()
        elif "watch" in tasks and dev.watch() and dev.link.connect():
            dev.flush()  # an emptying goes out at once
        dev.link.poll(dev.on_command)
        if dev.reboot_requested or dev.ota_request:
            _restart(dev, machine, apps)
        if now - last_good < 3 * dev.interval_s * 1000:
            wdt.feed()
        time.sleep_ms(min(dev.scheduler.wait_ms(dev.tb.now_ms()), 1000))


def _restart(dev, machine, apps):
    """Reboot command or OTA: ack already sent; orderly stop, then reset."""
    if dev.ota_request:
        from boucle_fw.hw.http import HttpSource
        try:
            version = ota.install(HttpSource(dev.ota_request["url"]), apps, FW_VERSION)
            print("boucle: installed app %s, restarting" % version)
        except Exception as e:
            dev.ota_request = None
            dev.last_error = "ota: %s" % e
            print("boucle: OTA failed:", e)
            return
    dev.shutdown()
    dev.link.close(orderly=True)
    machine.reset()


def _wake(cfg, dev, rtc, wifi, machine, system, apps):
    """Battery mode: one reading per wake, kept in RTC memory; publish every Nth wake."""
    for r in rtc.data.get("pending", []):
        dev.buffer.push(r)
    wakes = rtc.data.get("wakes", 0) + 1
    _clock_from_rtc(dev, rtc)  # the RTC keeps counting in deep sleep
    dev.sample()
    publish = wakes % cfg["deep_sleep"]["publish_every"] == 0 or not dev.tb.synced
    if publish and wifi.ensure():
        if _sync_clock(dev, cfg, system):
            rtc.data["unix"] = True
        if dev.link.connect():
            dev.flush()
            dev.publish_health()
            dev.link.poll(dev.on_command)
            dev.link.close(orderly=False)
            ota.mark_good(apps)
    pending = dev.buffer.ram_readings()
    if len(pending) > 12:  # RTC memory is 2 KB: spill the rest to flash
        dev.buffer.sync()
        pending = []
    rtc.data["pending"] = pending
    rtc.data["wakes"] = wakes
    rtc.data["seq"] = dev.seq
    rtc.save()
    machine.deepsleep(dev.interval_s * 1000)

