"""``gridworker iot simulate`` and ``gridworker iot import``: the simulator's traffic through
the real broker into the real service (every message ingested, one case per alarm burst,
malformed ones counted), and the CSV import into the database a service then loads."""

from __future__ import annotations

from gridworker.cli import main
from gridworker.incidents import IncidentQuery
from gridworker.iot.simulate import SimConfig, devices_csv, run_simulation, sim_devices
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, wait_until
from tests.forwarding.test_mqtt import SHARED
from tests.iot.conftest import iot_settings


def test_simulated_traffic_goes_in_whole(tmp_path, bus, make_service):
    devices = sim_devices(12, prefix="t-")
    settings = iot_settings(f"sqlite:///{tmp_path / 'sim.db'}", bus,
                            devices=[{"id": d.id, "type": d.mapping.type, "heartbeat_s": 5} for d in devices])
    service = make_service(settings)
    sim = run_simulation(SimConfig(
        host=SHARED[0], port=SHARED[1], topic_pattern=bus.pattern, devices=12, prefix="t-", seconds=4, interval_s=1,
        burst_every_s=1, burst_devices=2, restore_after_s=1.5, malformed_share=0.1, seed=5,
    ))
    assert sim.failed == 0 and sim.alarm_starts and sim.malformed
    wait_until(lambda: sum(service.iot.stats()[0].values()) == sim.messages, timeout=15)
    outcomes, per_device = service.iot.stats()
    assert outcomes["malformed"] == sim.malformed == sum(per_device.values())
    assert outcomes["alarm"] == sim.alarms and outcomes.get("unknown_device", 0) == 0
    opened = service.store.list(IncidentQuery(limit=500))[0]
    assert len([i for i in opened if i.rule_id != "offline"]) == len(sim.alarm_starts)
    wait_until(lambda: service.store.list(IncidentQuery(status="open"))[1] == 0, timeout=10)  # every burst was restored


def test_cli_writes_and_imports_devices(tmp_path, capsys):
    csv_path = tmp_path / "devices.csv"
    assert main(["iot", "simulate", "--devices", "5", "--csv", str(csv_path)]) == 0
    assert csv_path.read_text(encoding="utf-8") == devices_csv(sim_devices(5), heartbeat_s=10.0)
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["iot", "import", str(csv_path), "--database", db]) == 0
    assert "5 device(s) saved" in capsys.readouterr().out
    assert main(["iot", "import", str(csv_path), "--database", db]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["iot", "import", str(csv_path), "--database", db, "--replace"]) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("id,type\nx,gas_meter\n", encoding="utf-8")
    assert main(["iot", "import", str(bad), "--database", db]) == 1
    assert "no mapping for type 'gas_meter'" in capsys.readouterr().err
    assert main(["iot", "simulate", "--devices", "0"]) == 2
    service = Service(Settings(database={"url": db}), ParkedCarDetector())
    service.start()
    try:
        assert sorted(v.config.id for v in service.iot.views()) == sorted(d.id for d in sim_devices(5))
    finally:
        service.stop()
        service.db.close()
