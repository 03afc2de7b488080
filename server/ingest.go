package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/mappers"
)

// IngestConfig configures POST /ingest/readings.
type IngestConfig struct {
	// CreatePatients lets ingest create a Patient (with just the identifier) for a reading
	// whose patient identifier matches none; when false such readings are rejected.
	CreatePatients bool
	// ClockSkew is how far in the future a reading's time may be. Default 5 minutes.
	ClockSkew time.Duration
}

// ingestResult is the per-reading outcome returned to the client.
type ingestResult struct {
	Index       int    `json:"index"`
	Status      string `json:"status"` // created | duplicate | rejected
	Observation string `json:"observation,omitempty"`
	Device      string `json:"device,omitempty"`
	Patient     string `json:"patient,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Alerts are the DetectedIssues the reading raised or updated.
	Alerts []string `json:"alerts,omitempty"`
}

type ingestResponse struct {
	Format     string         `json:"format"`
	Created    int            `json:"created"`
	Duplicates int            `json:"duplicates"`
	Rejected   int            `json:"rejected"`
	Alerts     int            `json:"alerts"`
	Committed  bool           `json:"committed"`
	Results    []ingestResult `json:"results"`
}

// ingest serves POST /ingest/readings: a batch of device readings (Vigil compact JSON or
// Open mHealth data points) becomes Device and Observation resources in one transaction.
// Bad readings are rejected with a reason; their good siblings land unless the request
// says atomic=true. A retried reading is recognised by its identifier and stored once.
func (s *Server) ingest(c echo.Context) error {
	c.Set(ctxInteraction, "ingest")
	hr := c.Request()
	body, fe := s.readBody(hr)
	if fe != nil {
		return fe
	}
	status, resp, err := s.ingestBatch(hr.Context(), body, hr.URL.Query())
	if err != nil {
		return err
	}
	return s.ingestReply(c, status, resp)
}

// ingestOp serves the same ingest as the FHIR operation POST /fhir/Device/$ingest.
func (s *Server) ingestOp(ctx context.Context, req *request) (*response, error) {
	status, resp, err := s.ingestBatch(ctx, req.body, req.query)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(resp)
	return &response{status: status, body: b, header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}}, nil
}

// ingestBatch parses, validates and stores one ingest document; it returns the HTTP
// status and the per-reading answer.
func (s *Server) ingestBatch(ctx context.Context, body []byte, q url.Values) (int, *ingestResponse, error) {
	atomic := q.Get("atomic") == "true"
	opts := mappers.OMHOptions{PatientSystem: q.Get("patient-system")}
	if d := q.Get("device"); d != "" {
		sys, val, ok := strings.Cut(d, "|")
		if !ok {
			sys, val = "", d
		}
		opts.Device = mappers.DeviceInfo{Identifier: mappers.Identifier{System: sys, Value: val}, Type: q.Get("device-type")}
	}
	if p := q.Get("patient"); p != "" {
		sys, val, ok := strings.Cut(p, "|")
		if !ok {
			sys, val = opts.PatientSystem, p
		}
		opts.Patient = mappers.Identifier{System: sys, Value: val}
	}
	batch, format, err := mappers.Parse(body, opts)
	if err != nil {
		return 0, nil, errorf(http.StatusBadRequest, "structure", "unusable ingest document: %v", err)
	}
	skew := s.cfg.Ingest.ClockSkew
	if skew <= 0 {
		skew = 5 * time.Minute
	}
	valid := batch.Validate(s.store.Now(), skew)
	resp := &ingestResponse{Format: fmt.Sprint(format)}
	rejected := map[int]string{}
	for _, ie := range valid.Errors {
		rejected[ie.Index] = ie.Err.Error()
	}
	n := len(valid.Readings) + len(valid.Errors)
	results := make([]ingestResult, n)
	for i := range results {
		results[i].Index = i
	}
	for i, reason := range rejected {
		if i >= 0 && i < n {
			results[i] = ingestResult{Index: i, Status: "rejected", Reason: reason}
		}
	}
	if atomic && len(rejected) > 0 {
		resp.Rejected = len(rejected)
		resp.Results = results
		return http.StatusUnprocessableEntity, resp, nil
	}
	err = s.store.InTx(ctx, func(tx *fhirstore.Tx) error {
		w := &ingestWriter{s: s, tx: tx, patients: map[string]string{}, devices: map[string]string{},
			prefetched: map[string]bool{}, ambiguous: map[string]bool{}}
		return w.writeAll(ctx, valid.Readings, results, atomic)
	})
	var rej *rejection
	if errors.As(err, &rej) {
		resp.Rejected = 1 + len(rejected)
		resp.Results = results
		return http.StatusUnprocessableEntity, resp, nil
	}
	if err != nil {
		return 0, nil, asError(err)
	}
	resp.Committed = true
	for _, r := range results {
		switch r.Status {
		case "created":
			resp.Created++
		case "duplicate":
			resp.Duplicates++
		case "rejected":
			resp.Rejected++
		}
		resp.Alerts += len(r.Alerts)
	}
	resp.Results = results
	status := http.StatusOK
	if resp.Created+resp.Duplicates == 0 && resp.Rejected > 0 {
		status = http.StatusUnprocessableEntity
	}
	return status, resp, nil
}

func (s *Server) ingestReply(c echo.Context, status int, resp *ingestResponse) error {
	b, _ := json.Marshal(resp)
	return c.Blob(status, "application/json; charset=utf-8", b)
}

// rejection is a reading refused for a reason the client can fix (unknown patient...).
type rejection struct{ reason string }

func (r *rejection) Error() string { return r.reason }

// ingestWriter writes the readings of one batch, remembering the patients and devices it
// resolved so a batch from one device costs one lookup each.
type ingestWriter struct {
	s        *Server
	tx       *fhirstore.Tx
	patients map[string]string // identifier key -> "Patient/id"
	devices  map[string]string // device key -> "Device/id"
	// prefetched marks the identifier keys ("Patient"/"Device" + identKey) that prefetch
	// locked and looked up: absent from patients/devices means no match; ambiguous
	// patients are marked too.
	prefetched map[string]bool
	ambiguous  map[string]bool
}

// prefetch resolves the batch's patients and devices in a few statements whatever their
// number: one lock of every identifier the batch names (patients, devices and the readings'
// own; sorted, so concurrent batches never wait on each other in a cycle), then one lookup
// per kind and identifier system. A batch of 100 readings from 50 monitors took 200
// statements to do this one identifier at a time.
func (w *ingestWriter) prefetch(ctx context.Context, readings []mappers.Reading) error {
	var keys []string
	lookups := map[[2]string][]string{} // {type, system} -> values
	want := func(typ string, i mappers.Identifier) {
		if i.IsZero() || w.prefetched[typ+identKey(i)] {
			return
		}
		if (typ == "Patient" && w.patients[identKey(i)] != "") || (typ == "Device" && w.devices[identKey(i)] != "") {
			return
		}
		keys = append(keys, identifierKey(typ, i))
		if i.System != "" { // a value in any system is looked up on its own (patient, device)
			k := [2]string{typ, i.System}
			lookups[k] = append(lookups[k], i.Value)
			w.prefetched[typ+identKey(i)] = true
		}
	}
	for i := range readings {
		r := &readings[i]
		want("Patient", r.Patient)
		want("Device", mappers.DeviceIdentifier(r.Device))
		keys = append(keys, identifierKey("Observation", mappers.Identifier{System: mappers.ReadingIdentifierSystem, Value: r.ReadingID()}))
	}
	if err := w.tx.LockKeys(ctx, keys...); err != nil {
		return err
	}
	for k, values := range lookups {
		found, err := w.tx.MatchIdentifiersAll(ctx, k[0], k[1], values)
		if err != nil {
			return err
		}
		for v, ids := range found {
			key := identKey(mappers.Identifier{System: k[1], Value: v})
			switch {
			case k[0] == "Patient" && len(ids) > 1:
				w.ambiguous[key] = true
			case k[0] == "Patient":
				w.patients[key] = "Patient/" + ids[0]
			default:
				w.devices[key] = "Device/" + ids[0]
			}
		}
	}
	return nil
}

func identKey(i mappers.Identifier) string { return i.System + "|" + i.Value }

// lockIdentifier serialises the creators of a typ with this identifier until the
// transaction ends (the same lock a REST conditional create on identifier=system|value
// takes), so concurrent retries of one reading store it once, even across servers.
func (w *ingestWriter) lockIdentifier(ctx context.Context, typ string, i mappers.Identifier) error {
	return w.tx.LockKey(ctx, identifierKey(typ, i))
}

// identifierKey is the condition key of identifier=system|value on typ.
func identifierKey(typ string, i mappers.Identifier) string {
	v := i.Value
	if i.System != "" {
		v = i.System + "|" + i.Value
	}
	return conditionKey(typ, url.Values{"identifier": {v}})
}

func (w *ingestWriter) writeAll(ctx context.Context, readings []mappers.Reading, results []ingestResult, atomic bool) error {
	type pending struct {
		r   *mappers.Reading
		res ingestResult
		obs map[string]any
	}
	if err := w.prefetch(ctx, readings); err != nil {
		return err
	}
	var todo []*pending
	for i := range readings {
		r := &readings[i]
		p := &pending{r: r, res: ingestResult{Index: r.Index}}
		err := func() error {
			patientRef, err := w.patient(ctx, r.Patient)
			if err != nil {
				return err
			}
			deviceRef, err := w.device(ctx, r.Device, patientRef)
			if err != nil {
				return err
			}
			p.res.Patient, p.res.Device = patientRef, deviceRef
			if p.obs, err = mappers.Observation(r, mappers.Refs{Subject: patientRef, Device: deviceRef}); err != nil {
				return &rejection{reason: err.Error()}
			}
			return nil
		}()
		var rej *rejection
		switch {
		case errors.As(err, &rej) && !atomic:
			results[r.Index] = ingestResult{Index: r.Index, Status: "rejected", Reason: rej.reason}
			continue
		case err != nil:
			return err
		}
		todo = append(todo, p)
	}
	// Duplicates: every reading identifier is locked (prefetch took the lock a REST
	// conditional create on the same identifier takes); look them all up at once.
	values := make([]string, 0, len(todo))
	for _, p := range todo {
		values = append(values, p.r.ReadingID())
	}
	existing, err := w.tx.MatchIdentifiers(ctx, "Observation", mappers.ReadingIdentifierSystem, values)
	if err != nil {
		return err
	}
	var fresh []*pending
	var bodies []map[string]any
	inBatch := map[string]*pending{}
	for _, p := range todo {
		id := p.r.ReadingID()
		if oid, ok := existing[id]; ok {
			p.res.Status, p.res.Observation = "duplicate", "Observation/"+oid
			continue
		}
		if first, ok := inBatch[id]; ok {
			p.res.Status = "duplicate"
			p.res.Reason = fmt.Sprintf("same reading as item %d of this batch", first.r.Index)
			continue
		}
		inBatch[id] = p
		fresh = append(fresh, p)
		bodies = append(bodies, p.obs)
	}
	before := len(w.tx.Changes())
	stored, err := w.tx.CreateMany(ctx, "Observation", nil, bodies)
	if err != nil {
		return err
	}
	byID := make(map[string]*pending, len(fresh))
	for i, p := range fresh {
		p.res.Status, p.res.Observation = "created", "Observation/"+stored[i].ID
		byID[stored[i].ID] = p
	}
	// Hooks ran after the inserts, one Observation after the other: a DetectedIssue
	// written after an Observation of this batch (and before the next) is its alert.
	var cur *pending
	for _, c := range w.tx.Changes()[before:] {
		switch {
		case c.Resource.Type == "Observation" && byID[c.Resource.ID] != nil:
			cur = byID[c.Resource.ID]
		case c.Resource.Type == "DetectedIssue" && cur != nil:
			cur.res.Alerts = append(cur.res.Alerts, "DetectedIssue/"+c.Resource.ID)
		}
	}
	for _, p := range todo {
		if p.res.Status == "duplicate" && p.res.Observation == "" {
			p.res.Observation = inBatch[p.r.ReadingID()].res.Observation
			p.res.Reason = ""
		}
		results[p.r.Index] = p.res
	}
	return nil
}

func (w *ingestWriter) patient(ctx context.Context, ident mappers.Identifier) (string, error) {
	if ident.IsZero() {
		return "", &rejection{reason: "the reading names no patient identifier"}
	}
	key := identKey(ident)
	if ref, ok := w.patients[key]; ok {
		return ref, nil
	}
	var ids []string
	switch {
	case w.ambiguous[key]:
		ids = []string{"", ""}
	case w.prefetched["Patient"+key]: // locked, and no Patient has it
	default:
		if err := w.lockIdentifier(ctx, "Patient", ident); err != nil {
			return "", err
		}
		var err error
		if ids, err = w.tx.MatchIdentifier(ctx, "Patient", ident.System, ident.System != "", ident.Value, 2); err != nil {
			return "", err
		}
	}
	var ref string
	switch len(ids) {
	case 1:
		ref = "Patient/" + ids[0]
	case 0:
		if !w.s.cfg.Ingest.CreatePatients {
			return "", &rejection{reason: "no Patient has this identifier, and this deployment does not create patients from device data"}
		}
		p := map[string]any{"resourceType": "Patient", "identifier": []any{identJSON(ident)}}
		created, err := w.tx.Create(ctx, "Patient", p)
		if err != nil {
			return "", err
		}
		ref = "Patient/" + created.ID
	default:
		return "", &rejection{reason: "more than one Patient has this identifier"}
	}
	w.patients[key] = ref
	return ref, nil
}

func identJSON(i mappers.Identifier) map[string]any {
	m := map[string]any{"value": i.Value}
	if i.System != "" {
		m["system"] = i.System
	}
	return m
}

func (w *ingestWriter) device(ctx context.Context, d mappers.DeviceInfo, patientRef string) (string, error) {
	ident := mappers.DeviceIdentifier(d)
	if ident.IsZero() {
		return "", &rejection{reason: "the reading names no device"}
	}
	key := identKey(ident)
	if ref, ok := w.devices[key]; ok {
		return ref, nil
	}
	var ids []string
	if !w.prefetched["Device"+key] { // prefetched and absent: locked, and no Device has it
		if err := w.lockIdentifier(ctx, "Device", ident); err != nil {
			return "", err
		}
		var err error
		if ids, err = w.tx.MatchIdentifier(ctx, "Device", ident.System, ident.System != "", ident.Value, 1); err != nil {
			return "", err
		}
	}
	var ref string
	if len(ids) == 1 {
		ref = "Device/" + ids[0]
	} else {
		created, err := w.tx.Create(ctx, "Device", mappers.Device(d, patientRef))
		if err != nil {
			return "", err
		}
		ref = "Device/" + created.ID
	}
	w.devices[key] = ref
	return ref, nil
}
