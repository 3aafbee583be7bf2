-- gridworker's tables at commit eb80b14 as create_all made them (SQLite); written by make.py
CREATE TABLE api_keys (
	id INTEGER NOT NULL,
	key_id VARCHAR(32) NOT NULL,
	name VARCHAR(200) NOT NULL,
	role VARCHAR(32) NOT NULL,
	unit VARCHAR(64),
	salt BLOB NOT NULL,
	digest BLOB NOT NULL,
	created_at FLOAT NOT NULL,
	last_used_at FLOAT,
	revoked_at FLOAT,
	PRIMARY KEY (id),
	UNIQUE (key_id)
);

CREATE TABLE cameras (
	id VARCHAR(64) NOT NULL,
	config TEXT NOT NULL,
	created_at FLOAT NOT NULL,
	PRIMARY KEY (id)
);

CREATE TABLE deliveries (
	id INTEGER NOT NULL,
	outbox_id INTEGER NOT NULL,
	destination VARCHAR(64) NOT NULL,
	incident_id INTEGER NOT NULL,
	state VARCHAR(16) NOT NULL,
	attempts INTEGER NOT NULL,
	next_attempt_at FLOAT NOT NULL,
	last_error TEXT NOT NULL,
	last_attempt_at FLOAT,
	delivered_at FLOAT,
	dead_at FLOAT,
	replays INTEGER NOT NULL,
	created_at FLOAT NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT uq_delivery UNIQUE (outbox_id, destination)
);

CREATE INDEX ix_deliveries_outbox_id ON deliveries (outbox_id);

CREATE INDEX ix_delivery_due ON deliveries (destination, state, next_attempt_at);

CREATE INDEX ix_delivery_incident ON deliveries (destination, incident_id, state);

CREATE TABLE incidents (
	id INTEGER NOT NULL,
	camera_id VARCHAR(64) NOT NULL,
	camera_name VARCHAR(200) NOT NULL,
	site VARCHAR(200) NOT NULL,
	zone_id VARCHAR(64) NOT NULL,
	rule_id VARCHAR(64) NOT NULL,
	type VARCHAR(64) NOT NULL,
	status VARCHAR(16) NOT NULL,
	opened_at FLOAT NOT NULL,
	updated_at FLOAT NOT NULL,
	closed_at FLOAT,
	peak_count INTEGER NOT NULL,
	observations INTEGER NOT NULL,
	summary TEXT NOT NULL,
	details JSON NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_incidents_camera_id ON incidents (camera_id);

CREATE INDEX ix_incidents_opened_at ON incidents (opened_at);

CREATE INDEX ix_incidents_status ON incidents (status);

CREATE INDEX ix_incidents_type ON incidents (type);

CREATE TABLE outbox (
	id INTEGER NOT NULL,
	event VARCHAR(64) NOT NULL,
	incident_id INTEGER NOT NULL,
	version INTEGER NOT NULL,
	idempotency_key VARCHAR(64) NOT NULL,
	type VARCHAR(64) NOT NULL,
	site VARCHAR(200) NOT NULL,
	camera_id VARCHAR(64) NOT NULL,
	unit VARCHAR(64) NOT NULL,
	from_unit VARCHAR(64) NOT NULL,
	payload JSON NOT NULL,
	created_at FLOAT NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (idempotency_key)
);

CREATE INDEX ix_outbox_created_at ON outbox (created_at);

CREATE INDEX ix_outbox_incident_id ON outbox (incident_id);

CREATE TABLE patrol_plans (
	id VARCHAR(64) NOT NULL,
	config TEXT NOT NULL,
	created_at FLOAT NOT NULL,
	PRIMARY KEY (id)
);

CREATE TABLE incident_clips (
	incident_id INTEGER NOT NULL,
	path TEXT NOT NULL,
	size_bytes INTEGER NOT NULL,
	duration_s FLOAT NOT NULL,
	offset_s FLOAT NOT NULL,
	created_at FLOAT NOT NULL,
	PRIMARY KEY (incident_id),
	FOREIGN KEY(incident_id) REFERENCES incidents (id) ON DELETE CASCADE
);

CREATE TABLE incident_snapshots (
	incident_id INTEGER NOT NULL,
	jpeg BLOB NOT NULL,
	taken_at FLOAT NOT NULL,
	PRIMARY KEY (incident_id),
	FOREIGN KEY(incident_id) REFERENCES incidents (id) ON DELETE CASCADE
);

CREATE TABLE work_orders (
	incident_id INTEGER NOT NULL,
	type VARCHAR(64) NOT NULL,
	site VARCHAR(200) NOT NULL,
	camera_id VARCHAR(64) NOT NULL,
	state VARCHAR(16) NOT NULL,
	grade INTEGER NOT NULL,
	unit VARCHAR(64) NOT NULL,
	first_unit VARCHAR(64) NOT NULL,
	responsible_unit VARCHAR(64) NOT NULL,
	floor_rank INTEGER NOT NULL,
	escalations INTEGER NOT NULL,
	detected_at FLOAT NOT NULL,
	clock_start FLOAT NOT NULL,
	due_at FLOAT NOT NULL,
	dispatched_at FLOAT,
	accepted_at FLOAT,
	handled_at FLOAT,
	closed_at FLOAT,
	cleared_at FLOAT,
	overdue BOOLEAN NOT NULL,
	top_overdue_noted BOOLEAN NOT NULL,
	on_time BOOLEAN,
	note TEXT NOT NULL,
	version INTEGER NOT NULL,
	updated_at FLOAT NOT NULL,
	PRIMARY KEY (incident_id),
	FOREIGN KEY(incident_id) REFERENCES incidents (id) ON DELETE CASCADE
);

CREATE INDEX ix_work_orders_detected_at ON work_orders (detected_at);

CREATE INDEX ix_work_orders_due_at ON work_orders (due_at);

CREATE INDEX ix_work_orders_site ON work_orders (site);

CREATE INDEX ix_work_orders_state ON work_orders (state);

CREATE INDEX ix_work_orders_type ON work_orders (type);

CREATE INDEX ix_work_orders_unit ON work_orders (unit);

CREATE TABLE incident_audit (
	id INTEGER NOT NULL,
	incident_id INTEGER NOT NULL,
	version INTEGER NOT NULL,
	at FLOAT NOT NULL,
	actor VARCHAR(200) NOT NULL,
	role VARCHAR(32) NOT NULL,
	action VARCHAR(32) NOT NULL,
	from_state VARCHAR(16),
	to_state VARCHAR(16) NOT NULL,
	from_unit VARCHAR(64),
	to_unit VARCHAR(64),
	reason TEXT NOT NULL,
	details JSON NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(incident_id) REFERENCES work_orders (incident_id) ON DELETE CASCADE
);

CREATE INDEX ix_incident_audit_incident_id ON incident_audit (incident_id);

CREATE TABLE work_order_photos (
	incident_id INTEGER NOT NULL,
	jpeg BLOB NOT NULL,
	taken_at FLOAT NOT NULL,
	PRIMARY KEY (incident_id),
	FOREIGN KEY(incident_id) REFERENCES work_orders (incident_id) ON DELETE CASCADE
);

CREATE TABLE line_flows (
	camera_id VARCHAR(64) NOT NULL,
	line_id VARCHAR(64) NOT NULL,
	class_name VARCHAR(64) NOT NULL,
	direction VARCHAR(3) NOT NULL,
	minute INTEGER NOT NULL,
	count INTEGER NOT NULL,
	PRIMARY KEY (camera_id, line_id, class_name, direction, minute)
);

CREATE INDEX ix_line_flows_minute ON line_flows (minute);
