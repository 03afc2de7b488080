package fhirstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
)

// The obs_latest table keeps, per patient and Observation code (each coding of
// Observation.code), the newest Observation: the one with the latest end of its effective
// time, the first stored on a tie, undated ones oldest. It is written with the index rows
// in the write transaction, so it always agrees with them. It answers what device
// integrations ask on every reading, "the latest vitals of this patient" (the alert rules,
// Observation/$lastn with max=1), from a handful of rows instead of the patient's whole
// history.
var latestDDL = []string{
	`CREATE TABLE obs_latest (
		patient TEXT NOT NULL,
		system TEXT NOT NULL,
		code TEXT NOT NULL,
		rid BIGINT NOT NULL,
		high BIGINT NOT NULL,
		first_rid BIGINT NOT NULL,
		PRIMARY KEY (patient, system, code)
	)`,
	`CREATE INDEX obs_latest_rid ON obs_latest (rid)`,
	// Existing Observations: the newest per patient and coding, from the index rows.
	`INSERT INTO obs_latest (patient, system, code, rid, high, first_rid)
	SELECT patient, system, code, rid, high, first_rid FROM (
		SELECT p.target_id AS patient, t.system AS system, t.code AS code, t.rid AS rid,
			COALESCE(d.high, -4611686018427387904) AS high,
			MIN(t.rid) OVER (PARTITION BY p.target_id, t.system, t.code) AS first_rid,
			ROW_NUMBER() OVER (PARTITION BY p.target_id, t.system, t.code
				ORDER BY COALESCE(d.high, -4611686018427387904) DESC, t.rid) AS n
		FROM idx_token t
		JOIN idx_reference p ON p.rid = t.rid AND p.type = 'Observation' AND p.param = 'patient' AND p.target_type = 'Patient'
		LEFT JOIN (SELECT rid, MAX(high) AS high FROM idx_date WHERE type = 'Observation' AND param = 'date' GROUP BY rid) d ON d.rid = t.rid
		WHERE t.type = 'Observation' AND t.param = 'code' AND t.code <> ''
	) x WHERE n = 1`,
}

// latestInPlaceDDL is migration 8: obs_latest loses its index by rid, so that replacing a
// patient's latest reading (every reading of a device) is an update in place (a HOT update
// on PostgreSQL, room for it kept free on each page) instead of new entries in two
// indexes; a deleted or amended Observation's rows are found through its patient.
var latestInPlaceDDL = []string{
	`DROP INDEX obs_latest_rid`,
	`POSTGRES ALTER TABLE obs_latest SET (fillfactor = 70)`,
}

// latestRow is one obs_latest candidate: an Observation (rid) of a patient with a coding,
// and the end of its effective time.
type latestRow struct {
	patient, system, code string
	rid, high             int64
	first                 int64
}

func (a latestRow) key() [3]string { return [3]string{a.patient, a.system, a.code} }

// latestRows derives the obs_latest candidates of a resource from its index rows: every
// patient it is about times every coding of its code.
func latestRows(rid int64, typ string, rows *IndexRows) []latestRow {
	if typ != "Observation" || rows == nil {
		return nil
	}
	var patients []string
	for _, r := range rows.References {
		if r.Param == "patient" && r.TargetType == "Patient" && r.TargetID != "" && !slices.Contains(patients, r.TargetID) {
			patients = append(patients, r.TargetID)
		}
	}
	if len(patients) == 0 {
		return nil
	}
	high, dated := DateMin, false
	for _, d := range rows.Dates {
		if d.Param == "date" && (!dated || d.High > high) {
			high, dated = d.High, true
		}
	}
	var out []latestRow
	for _, t := range rows.Tokens {
		if t.Param != "code" || t.Code == "" {
			continue
		}
		for _, p := range patients {
			out = append(out, latestRow{patient: p, system: t.System, code: t.Code, rid: rid, high: high, first: rid})
		}
	}
	return out
}

// newer reports whether a is the newer Observation of the two (later end of effective
// time, or stored first on a tie).
func (a latestRow) newer(b latestRow) bool {
	return a.high > b.high || a.high == b.high && a.rid < b.rid
}

// latestInsert merges candidates to one row per key (an upsert must not touch a row twice
// in one statement), in key order so that concurrent writers lock rows in the same order,
// and makes the upsert that keeps the newer Observation.
func latestInsert(rows []latestRow) indexInsert {
	in := indexInsert{table: "obs_latest", cols: "patient, system, code, rid, high, first_rid", width: 6,
		suffix: ` ON CONFLICT (patient, system, code) DO UPDATE SET rid = excluded.rid, high = excluded.high
			WHERE excluded.high > obs_latest.high OR (excluded.high = obs_latest.high AND excluded.rid < obs_latest.rid)`}
	if len(rows) == 0 {
		return in
	}
	slices.SortFunc(rows, func(a, b latestRow) int {
		if c := strings.Compare(a.patient, b.patient); c != 0 {
			return c
		}
		if c := strings.Compare(a.system, b.system); c != 0 {
			return c
		}
		return strings.Compare(a.code, b.code)
	})
	merged := rows[:1]
	for _, r := range rows[1:] {
		last := &merged[len(merged)-1]
		if r.key() != last.key() {
			merged = append(merged, r)
			continue
		}
		first := min(last.first, r.first)
		if r.newer(*last) {
			*last = r
		}
		last.first = first
	}
	in.n = len(merged)
	in.row = func(i int, a []any) []any {
		r := merged[i]
		return append(a, r.patient, r.system, r.code, r.rid, r.high, r.first)
	}
	return in
}

// recomputeLatest rebuilds the obs_latest rows of keys from the index, after the
// Observation they pointed to changed or went away.
func (tx *Tx) recomputeLatest(ctx context.Context, keys [][3]string) error {
	for _, k := range keys {
		rows, err := tx.query(ctx, `SELECT t.rid, COALESCE((SELECT MAX(d.high) FROM idx_date d WHERE d.rid = t.rid AND d.param = 'date'), ?)
			FROM idx_token t JOIN idx_reference p ON p.rid = t.rid AND p.type = 'Observation' AND p.param = 'patient'
				AND p.target_type = 'Patient' AND p.target_id = ?
			WHERE t.type = 'Observation' AND t.param = 'code' AND t.system = ? AND t.code = ?`, DateMin, k[0], k[1], k[2])
		if err != nil {
			return fmt.Errorf("fhirstore: latest of %s: %w", k, err)
		}
		var best latestRow
		found := false
		for rows.Next() {
			c := latestRow{patient: k[0], system: k[1], code: k[2]}
			if err := rows.Scan(&c.rid, &c.high); err != nil {
				rows.Close()
				return fmt.Errorf("fhirstore: latest of %s: %w", k, err)
			}
			c.first = c.rid
			if !found {
				best, found = c, true
				continue
			}
			first := min(best.first, c.rid)
			if c.newer(best) {
				best = c
			}
			best.first = first
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("fhirstore: latest of %s: %w", k, err)
		}
		if _, err := tx.exec(ctx, `DELETE FROM obs_latest WHERE patient = ? AND system = ? AND code = ?`, k[0], k[1], k[2]); err != nil {
			return fmt.Errorf("fhirstore: latest of %s: %w", k, err)
		}
		if found {
			if _, err := tx.exec(ctx, `INSERT INTO obs_latest (patient, system, code, rid, high, first_rid) VALUES (?, ?, ?, ?, ?, ?)`,
				best.patient, best.system, best.code, best.rid, best.high, best.first); err != nil {
				return fmt.Errorf("fhirstore: latest of %s: %w", k, err)
			}
		}
	}
	return nil
}

// LatestObservations returns the patient's newest Observation of each code (each coding of
// Observation.code; an Observation with several codings once) whose effective time ends
// at or after since (Unix microseconds; DateMin for all), as the transaction sees them.
// The alert rules read a patient's current vitals with it.
func (tx *Tx) LatestObservations(ctx context.Context, patientID string, since int64) ([]*Resource, error) {
	return tx.resources(ctx, `SELECT r.rid, r.type, r.id, r.version, r.last_updated, r.body FROM resource r
		WHERE r.deleted = 0 AND r.rid IN (SELECT l.rid FROM obs_latest l WHERE l.patient = ? AND l.high >= ?) ORDER BY r.rid`,
		patientID, since)
}

// Referencing returns the live resources of type typ whose reference search parameter
// param points to targetType/targetID (DetectedIssue "patient" Patient/1, say), most
// recently updated first, at most limit.
func (tx *Tx) Referencing(ctx context.Context, typ, param, targetType, targetID string, limit int) ([]*Resource, error) {
	return tx.resources(ctx, `SELECT r.rid, r.type, r.id, r.version, r.last_updated, r.body FROM resource r
		WHERE r.deleted = 0 AND r.rid IN (SELECT i.rid FROM idx_reference i
			WHERE i.target_id = ? AND i.type = ? AND i.param = ? AND i.target_type = ?)
		ORDER BY r.last_updated DESC, r.rid DESC LIMIT ?`, targetID, typ, param, targetType, limit)
}

// resources runs a query selecting rid, type, id, version, last_updated, body.
func (tx *Tx) resources(ctx context.Context, q string, args ...any) ([]*Resource, error) {
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("fhirstore: read: %w", err)
	}
	found, err := scanPageRows(rows)
	if err != nil {
		return nil, err
	}
	out := make([]*Resource, len(found))
	for i, r := range found {
		out[i] = r.res
	}
	return out, nil
}

// lastOne is LastN with max=1, answered from obs_latest: the patient's newest
// Observation per code in a few rows, whatever the length of its history. ok is false for
// a code token it does not read ("system|" alone), which the general path then answers.
func (s *Store) lastOne(ctx context.Context, patient string, codes []string) (out []*Resource, ok bool, err error) {
	type want struct {
		system, code string
		anySystem    bool
	}
	var wants []want
	for _, c := range codes {
		sys, code, hasSys := strings.Cut(c, "|")
		if !hasSys {
			wants = append(wants, want{code: c, anySystem: true})
			continue
		}
		if code == "" || strings.Contains(code, "|") {
			return nil, false, nil
		}
		wants = append(wants, want{system: sys, code: code})
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT system, code, rid, high, first_rid FROM obs_latest WHERE patient = ?`), patient)
	if err != nil {
		return nil, false, fmt.Errorf("fhirstore: lastn: %w", err)
	}
	var all []latestRow
	for rows.Next() {
		r := latestRow{patient: patient}
		if err := rows.Scan(&r.system, &r.code, &r.rid, &r.high, &r.first); err != nil {
			rows.Close()
			return nil, false, fmt.Errorf("fhirstore: lastn: %w", err)
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("fhirstore: lastn: %w", err)
	}
	var pick []int64
	add := func(rid int64) {
		if !slices.Contains(pick, rid) {
			pick = append(pick, rid)
		}
	}
	if len(wants) == 0 {
		// Codes in order of first appearance.
		slices.SortFunc(all, func(a, b latestRow) int {
			if a.first != b.first {
				return cmp.Compare(a.first, b.first)
			}
			return strings.Compare(a.system+"|"+a.code, b.system+"|"+b.code)
		})
		for _, r := range all {
			add(r.rid)
		}
	}
	for _, w := range wants {
		var best *latestRow
		for i, r := range all {
			if r.code == w.code && (w.anySystem || r.system == w.system) && (best == nil || r.newer(*best)) {
				best = &all[i]
			}
		}
		if best != nil {
			add(best.rid)
		}
	}
	out, err = s.liveInOrder(ctx, pick)
	return out, err == nil, err
}
