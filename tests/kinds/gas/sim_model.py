"""The simulator model of the throwaway `gas` kind: a boiler that burns while its site is
open (the site context), each meter in front of the firmware's integer counter."""

from dataclasses import dataclass

from boucle_fw.accounting import EnergyCounter

from simulator.devices import VirtualCounterMeter

COUNTER = "gas_dm3"
COUNTED = "dm3"
OPEN_DM3H, CLOSED_DM3H = 1800.0, 120.0


@dataclass
class VirtualGasMeter(VirtualCounterMeter):
    true_dm3: float = 0.0


def virtual(fleet, dev, common, saved):
    fleet.ledger.describe(dev.id, site=common["site"].id, territory=common["territory"], kind="gas")
    return VirtualGasMeter(**common, counter=EnergyCounter(saved.counters.get(COUNTER, 0)))


def step(fleet, group, meters, ts, local, dt_s):
    flow = OPEN_DM3H if group.open_now else CLOSED_DM3H
    for m in meters:
        m.true_dm3 += flow * dt_s / 3600
        m.counter.add_power(flow, dt_s * 1000)  # dm³/h over dt: dm³, the firmware's integer rounding
        reading = None
        if m.due():
            reading = m.stamp(ts)
            reading["gas_dm3"] = m.counter.total_wh
            reading["gas_flow_dm3h"] = flow
        fleet.keep(m, reading, ts)
        fleet.ledger.add(m.device.id, ts, true_dm3=flow * dt_s / 3600, readings=int(reading is not None))
        fleet.state[m.device.id].counters[COUNTER] = m.counter.total_wh
