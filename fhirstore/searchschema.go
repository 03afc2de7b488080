package fhirstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// searchIndexDDL is migration 2: one index table per search parameter type besides
// idx_token (created by migration 1), a grp column on every table pairing the components
// of composite parameters, and the B-tree indexes the common queries use: type + parameter
// + value + rid for filters, rid for sorting and deleting, and target id first for
// references (it serves patient=X, reverse includes, compartments and $everything alike).
// Every index costs page writes on each create, so there are no others: :text and
// :contains scan, and so do absolute-URL reference searches.
var searchIndexDDL = []string{
	`ALTER TABLE idx_token ADD COLUMN grp INTEGER NOT NULL DEFAULT 0`,
	`CREATE TABLE idx_string (
		rid BIGINT NOT NULL,
		type TEXT NOT NULL,
		param TEXT NOT NULL,
		norm TEXT NOT NULL,
		exact TEXT NOT NULL,
		grp INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX idx_string_norm ON idx_string (type, param, norm, rid)`,
	`CREATE INDEX idx_string_rid ON idx_string (rid)`,
	`CREATE TABLE idx_reference (
		rid BIGINT NOT NULL,
		type TEXT NOT NULL,
		param TEXT NOT NULL,
		target_type TEXT NOT NULL DEFAULT '',
		target_id TEXT NOT NULL DEFAULT '',
		url TEXT NOT NULL DEFAULT '',
		version TEXT NOT NULL DEFAULT '',
		grp INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX idx_reference_target ON idx_reference (target_id, type, param, target_type, rid)`,
	`CREATE INDEX idx_reference_rid ON idx_reference (rid)`,
	`CREATE TABLE idx_date (
		rid BIGINT NOT NULL,
		type TEXT NOT NULL,
		param TEXT NOT NULL,
		low BIGINT NOT NULL,
		high BIGINT NOT NULL,
		grp INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX idx_date_low ON idx_date (type, param, low, high, rid)`,
	`CREATE INDEX idx_date_rid ON idx_date (rid, param)`,
	`CREATE TABLE idx_number (
		rid BIGINT NOT NULL,
		type TEXT NOT NULL,
		param TEXT NOT NULL,
		value REAL8 NOT NULL,
		low REAL8 NOT NULL,
		high REAL8 NOT NULL,
		grp INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX idx_number_value ON idx_number (type, param, value, rid)`,
	`CREATE INDEX idx_number_rid ON idx_number (rid)`,
	`CREATE TABLE idx_quantity (
		rid BIGINT NOT NULL,
		type TEXT NOT NULL,
		param TEXT NOT NULL,
		value REAL8 NOT NULL,
		low REAL8 NOT NULL,
		high REAL8 NOT NULL,
		system TEXT NOT NULL DEFAULT '',
		code TEXT NOT NULL DEFAULT '',
		unit TEXT NOT NULL DEFAULT '',
		ccode TEXT NOT NULL DEFAULT '',
		cvalue REAL8 NOT NULL DEFAULT 0,
		clow REAL8 NOT NULL DEFAULT 0,
		chigh REAL8 NOT NULL DEFAULT 0,
		grp INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX idx_quantity_canon ON idx_quantity (type, param, ccode, cvalue, rid)`,
	`CREATE INDEX idx_quantity_rid ON idx_quantity (rid)`,
	`CREATE TABLE idx_uri (
		rid BIGINT NOT NULL,
		type TEXT NOT NULL,
		param TEXT NOT NULL,
		uri TEXT NOT NULL,
		grp INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX idx_uri_value ON idx_uri (type, param, uri, rid)`,
	`CREATE INDEX idx_uri_rid ON idx_uri (rid)`,
}

// searchIndexDDL4 is migration 4: idx_date_rid carries the bounds, so the per-resource
// date probes of patient-scoped searches (is this reading in the window? what is its
// sort key?) are answered from the index alone on PostgreSQL instead of one heap page
// per reading. It replaces the (rid, param) index: still one B-tree per create.
var searchIndexDDL4 = []string{
	`DROP INDEX idx_date_rid`,
	`CREATE INDEX idx_date_rid ON idx_date (rid, param, high, low)`,
}

// searchIndexDDL5 is migration 5: idx_token_code puts rid before system. A token without a
// system (code=8867-4, category=vital-signs), the usual form, then probes a candidate
// resource in the index alone (type, param, code, rid), instead of fetching its token rows
// through idx_token_rid; with a system the probe is the same index range plus one column.
// Same number of B-trees.
var searchIndexDDL5 = []string{
	`DROP INDEX idx_token_code`,
	`CREATE INDEX idx_token_code ON idx_token (type, param, code, rid, system)`,
}

// referenceDatesDDL is migration 7: every reference row carries the span of its resource's
// "date" parameter (dlow = earliest start, dhigh = latest end), covered by the target
// index. An undated resource, and a row written without a span (by an older Vigil during a
// rolling upgrade, say), has the whole time line DateMin..DateMax, which never narrows
// anything: the exact date conditions still decide. A patient-scoped date
// search (Observation?patient=X&date=ge…&date=lt…) then narrows the patient's readings
// inside the index range it walks anyway, instead of probing the date index once per
// reading of the patient's history. The index keeps rid order (paging by rid stops early).
var referenceDatesDDL = []string{
	`ALTER TABLE idx_reference ADD COLUMN dlow BIGINT NOT NULL DEFAULT -4611686018427387904`,
	`ALTER TABLE idx_reference ADD COLUMN dhigh BIGINT NOT NULL DEFAULT 4611686018427387904`,
	`UPDATE idx_reference SET dlow = d.lo, dhigh = d.hi
		FROM (SELECT rid, MIN(low) AS lo, MAX(high) AS hi FROM idx_date WHERE param = 'date' GROUP BY rid) d
		WHERE idx_reference.rid = d.rid`,
	`DROP INDEX idx_reference_target`,
	`CREATE INDEX idx_reference_target ON idx_reference (target_id, type, param, target_type, rid COVERING dlow, dhigh)`,
}

// SchemaFingerprint is a short hash of every migration's version, name and DDL text. Two
// builds with the same fingerprint create the same schema, so a database migrated by one
// (a test template, say) can stand in for the other; a changed step changes it even when
// the version number does not.
func SchemaFingerprint() string {
	h := sha256.New()
	for _, m := range migrations {
		fmt.Fprintf(h, "%d\x00%s\x00", m.version, m.name)
		for _, s := range m.stmts {
			fmt.Fprintf(h, "%s\x00", s)
		}
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
