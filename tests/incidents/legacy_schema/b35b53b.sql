-- gridworker's tables at commit b35b53b beyond eb80b14 as create_all made them (SQLite); written by make.py
CREATE TABLE incident_clips_missing (
	incident_id INTEGER NOT NULL,
	reason TEXT NOT NULL,
	at FLOAT NOT NULL,
	PRIMARY KEY (incident_id),
	FOREIGN KEY(incident_id) REFERENCES incidents (id) ON DELETE CASCADE
);
