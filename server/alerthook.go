package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/mappers/alerts"
)

// AlertHook runs the alert rules on every Observation write, whatever its door (REST,
// transaction, ingest, HL7 v2), inside the write transaction: a breach creates or updates
// a DetectedIssue that commits with the Observation, or neither commits.
type AlertHook struct {
	rules alerts.Rules
	log   *slog.Logger
}

// NewAlertHook builds the hook for rules (alerts.DefaultRules() for the defaults).
func NewAlertHook(rules alerts.Rules, log *slog.Logger) *AlertHook {
	if log == nil {
		log = slog.Default()
	}
	return &AlertHook{rules: rules, log: log}
}

// maxAlertsRead bounds how many of a patient's alerts (open or closed) one evaluation
// reads.
const maxAlertsRead = 100

// alertStateKey is the Tx.Memo key of the hook's per-transaction state.
type alertStateKey struct{}

// patientAlerts is what the hook knows of one patient within a transaction: the latest
// Observation per code and the open alerts. It is read from the store once per patient and
// transaction and then kept current as the transaction writes, so a batch of readings (an
// ingest batch, an ORU with several OBX) costs two queries, not two per reading.
type patientAlerts struct {
	recent map[string]map[string]any // code -> latest Observation
	open   []alerts.OpenAlert
}

// alertTx is the hook's state in one transaction: per patient, and the alert updates to
// write before the commit. An alert that every reading of a batch updates is written once,
// in its final state, instead of once per reading.
type alertTx struct {
	patients map[string]*patientAlerts
	pending  map[string]map[string]any // DetectedIssue id -> its new content
	order    []string                  // ids in first-update order
	// written holds the content of the Observations the transaction wrote (read from
	// Tx.Changes up to scanned), so that reading a patient's latest vitals does not decode
	// again what this transaction has just stored: a message's or batch's own readings.
	written map[string]map[string]any
	scanned int
}

// content returns the decoded content of the Observation m: the transaction's own when it
// wrote it, else m's body decoded (nil when it does not decode).
func (a *alertTx) content(tx *fhirstore.Tx, m *fhirstore.Resource) map[string]any {
	changes := tx.Changes()
	for ; a.scanned < len(changes); a.scanned++ {
		c := changes[a.scanned]
		if c.Resource.Type == "Observation" && c.Content != nil {
			a.written[c.Resource.ID] = c.Content
		}
	}
	// The same version as the one read (a write rolled back with its savepoint would not be).
	if o, ok := a.written[m.ID]; ok {
		if meta, _ := o["meta"].(map[string]any); meta != nil {
			if vid, _ := meta["versionId"].(string); vid == strconv.FormatInt(m.Version, 10) {
				return o
			}
		}
	}
	var o map[string]any
	if json.Unmarshal(m.Body, &o) != nil {
		return nil
	}
	return o
}

// AfterWrite implements fhirstore.Hook.
func (h *AlertHook) AfterWrite(ctx context.Context, tx *fhirstore.Tx, c fhirstore.Change) error {
	r := c.Resource
	if r.Type != "Observation" || r.Deleted {
		return nil
	}
	obs := c.Content
	if obs == nil {
		if err := json.Unmarshal(r.Body, &obs); err != nil {
			return fmt.Errorf("alerts: decode Observation/%s: %w", r.ID, err)
		}
	}
	subject, _ := obs["subject"].(map[string]any)
	patient, _ := subject["reference"].(string)
	if !strings.HasPrefix(patient, "Patient/") {
		return nil // alerts are about patients
	}
	now := tx.Now()
	atx := tx.Memo(alertStateKey{}, func() any {
		a := &alertTx{patients: map[string]*patientAlerts{}, pending: map[string]map[string]any{}, written: map[string]map[string]any{}}
		tx.BeforeCommit(a.flush(tx))
		return a
	}).(*alertTx)
	st := atx.patients[patient]
	if st == nil {
		var err error
		if st, err = h.load(ctx, tx, atx, patient, r.ID, now); err != nil {
			return err
		}
		atx.patients[patient] = st
	}
	recent := make([]map[string]any, 0, len(st.recent))
	for _, o := range st.recent {
		if id, _ := o["id"].(string); id != r.ID {
			recent = append(recent, o)
		}
	}
	acts, err := h.rules.Evaluate(alerts.Input{Observation: obs, Recent: recent, Open: st.open, Now: now})
	// The new Observation is now the patient's latest of its code (if it is not older).
	if key := firstCode(obs); key != "" {
		if prev, ok := st.recent[key]; !ok || !effective(obs).Before(effective(prev)) {
			st.recent[key] = obs
		}
	}
	if err != nil {
		// A reading the rules cannot judge (no value, unknown code) raises nothing; it is
		// stored all the same.
		h.log.Debug("alert rules skipped an observation", "err", err)
		return nil
	}
	for _, a := range acts {
		switch a.Kind {
		case alerts.ActionCreate:
			stored, err := tx.Create(ctx, "DetectedIssue", a.Resource)
			if err != nil {
				return fmt.Errorf("alerts: create DetectedIssue: %w", err)
			}
			var d map[string]any
			if err := json.Unmarshal(stored.Body, &d); err != nil {
				return fmt.Errorf("alerts: decode DetectedIssue/%s: %w", stored.ID, err)
			}
			st.track(stored.ID, d)
		default:
			// Updates and resolutions are written before the commit, once per alert.
			if _, seen := atx.pending[a.AlertID]; !seen {
				atx.order = append(atx.order, a.AlertID)
			}
			a.Resource["id"] = a.AlertID
			atx.pending[a.AlertID] = a.Resource
			st.track(a.AlertID, a.Resource)
		}
	}
	return nil
}

// flush writes the pending alert updates of the transaction.
func (a *alertTx) flush(tx *fhirstore.Tx) func(context.Context) error {
	return func(ctx context.Context) error {
		for _, id := range a.order {
			res := a.pending[id]
			if _, _, err := tx.Update(ctx, "DetectedIssue", id, "PUT", func(*fhirstore.Resource) (map[string]any, error) {
				return res, nil
			}); err != nil {
				return fmt.Errorf("alerts: update DetectedIssue/%s: %w", id, err)
			}
		}
		a.order, a.pending = nil, map[string]map[string]any{}
		return nil
	}
}

// load reads the patient's latest vitals within the window (the newest Observation of
// each code, kept by the store) and open alerts.
func (h *AlertHook) load(ctx context.Context, tx *fhirstore.Tx, atx *alertTx, patient, skipID string, now time.Time) (*patientAlerts, error) {
	st := &patientAlerts{recent: map[string]map[string]any{}}
	latest, err := tx.LatestObservations(ctx, strings.TrimPrefix(patient, "Patient/"), now.Add(-h.rules.Window).UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("alerts: recent vitals: %w", err)
	}
	for _, m := range latest {
		if m.ID == skipID {
			continue
		}
		o := atx.content(tx, m)
		if o == nil {
			continue
		}
		key := firstCode(o)
		if prev, ok := st.recent[key]; key != "" && (!ok || effective(o).After(effective(prev))) {
			st.recent[key] = o
		}
	}
	// The patient's alerts, newest first: an open one is updated by every reading that
	// keeps its condition, so it is among them even when many closed ones are older.
	openRes, err := tx.Referencing(ctx, "DetectedIssue", "patient", "Patient", strings.TrimPrefix(patient, "Patient/"), maxAlertsRead)
	if err != nil {
		return nil, fmt.Errorf("alerts: open alerts: %w", err)
	}
	for _, m := range openRes {
		var d map[string]any
		if json.Unmarshal(m.Body, &d) != nil {
			continue
		}
		if a, ok := alerts.OpenAlertFromResource(d); ok {
			st.open = append(st.open, a)
		}
	}
	return st, nil
}

// track brings the open-alert list up to date with the new content d of alert id.
func (st *patientAlerts) track(id string, d map[string]any) {
	st.open = slices.DeleteFunc(st.open, func(a alerts.OpenAlert) bool { return a.ID == id })
	if a, ok := alerts.OpenAlertFromResource(d); ok {
		st.open = append(st.open, a)
	}
}

// effective is an Observation's effective time (dateTime, instant or period start); the
// zero time when it has none or only a partial date.
func effective(o map[string]any) time.Time {
	v, _ := o["effectiveDateTime"].(string)
	if v == "" {
		v, _ = o["effectiveInstant"].(string)
	}
	if p, ok := o["effectivePeriod"].(map[string]any); ok && v == "" {
		v, _ = p["start"].(string)
	}
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}

// firstCode is the "system|code" of an Observation's first coding.
func firstCode(o map[string]any) string {
	code, _ := o["code"].(map[string]any)
	codings, _ := code["coding"].([]any)
	if len(codings) == 0 {
		return ""
	}
	c, _ := codings[0].(map[string]any)
	sys, _ := c["system"].(string)
	v, _ := c["code"].(string)
	return sys + "|" + v
}
