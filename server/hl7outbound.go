package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/hl7v2"
	"github.com/vigil-health/vigil/hl7v2/mllp"
	hl7map "github.com/vigil-health/vigil/mappers/hl7"
)

// HL7Destination is a system that receives results as HL7 v2 ORU^R01 (IHE PCD-01 style)
// over MLLP. It is also the JSON form of one entry of the --hl7-destinations file.
type HL7Destination struct {
	// Name identifies the destination in the outbox and the admin endpoints.
	Name string `json:"name"`
	// Addr is the destination's host:port.
	Addr string `json:"addr"`
	// TLS makes the connection use TLS, verified against the system roots or CAFile, for
	// the host of Addr or ServerName.
	TLS        bool   `json:"tls,omitempty"`
	CAFile     string `json:"ca_file,omitempty"`
	ServerName string `json:"server_name,omitempty"`
	// Filter is a FHIR search, such as "Observation?category=vital-signs": every
	// Observation written that it matches is sent. "Observation" alone sends all.
	Filter string `json:"filter"`
	// Alerts also sends every DetectedIssue raised or updated about a matching Observation,
	// as the Observation's message with the alert as one more OBX row.
	Alerts bool `json:"alerts,omitempty"`
	// ReceivingApplication and ReceivingFacility are MSH-5 and MSH-6, written as HD values
	// ("LAB^1.2.3^ISO").
	ReceivingApplication string `json:"receiving_application,omitempty"`
	ReceivingFacility    string `json:"receiving_facility,omitempty"`
}

// LoadHL7Destinations reads a JSON array of destinations.
func LoadHL7Destinations(data []byte) ([]HL7Destination, error) {
	var ds []HL7Destination
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ds); err != nil {
		return nil, fmt.Errorf("hl7 destinations: %w", err)
	}
	for i, d := range ds {
		if _, err := newDestination(d); err != nil {
			return nil, fmt.Errorf("hl7 destination %d: %w", i+1, err)
		}
	}
	return ds, nil
}

// destination is a validated HL7Destination.
type destination struct {
	HL7Destination
	typ     string
	params  url.Values
	tls     *tls.Config
	recvApp hl7v2.HD
	recvFac hl7v2.HD
	wakeup  chan struct{}
}

func newDestination(d HL7Destination) (*destination, error) {
	if d.Name == "" || strings.ContainsAny(d.Name, "/?# ") {
		return nil, fmt.Errorf("name %q: want a non-empty name without spaces, / ? or #", d.Name)
	}
	if _, _, err := net.SplitHostPort(d.Addr); err != nil {
		return nil, fmt.Errorf("%s: addr %q: want host:port", d.Name, d.Addr)
	}
	typ, rawQuery, _ := strings.Cut(d.Filter, "?")
	if typ != "Observation" {
		return nil, fmt.Errorf("%s: filter %q: want an Observation search such as Observation?category=vital-signs", d.Name, d.Filter)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("%s: filter %q: %w", d.Name, d.Filter, err)
	}
	for k := range q {
		if strings.HasPrefix(k, "_") && k != "_tag" && k != "_profile" && k != "_security" && k != "_lastUpdated" {
			return nil, fmt.Errorf("%s: filter %q: the control parameter %s cannot select resources", d.Name, d.Filter, k)
		}
	}
	dd := &destination{HL7Destination: d, typ: typ, params: q, wakeup: make(chan struct{}, 1),
		recvApp: parseHD(d.ReceivingApplication), recvFac: parseHD(d.ReceivingFacility)}
	if d.TLS {
		host, _, _ := net.SplitHostPort(d.Addr)
		dd.tls = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
		if d.ServerName != "" {
			dd.tls.ServerName = d.ServerName
		}
		if d.CAFile != "" {
			pem, err := os.ReadFile(d.CAFile)
			if err != nil {
				return nil, fmt.Errorf("%s: ca_file: %w", d.Name, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s: ca_file %s holds no PEM certificate", d.Name, d.CAFile)
			}
			dd.tls.RootCAs = pool
		}
	}
	return dd, nil
}

// parseHD reads "namespace^universal id^type".
func parseHD(s string) hl7v2.HD {
	p := strings.SplitN(s, "^", 3)
	for len(p) < 3 {
		p = append(p, "")
	}
	return hl7v2.HD{NamespaceID: p[0], UniversalID: p[1], UniversalIDType: p[2]}
}

// matches reports whether the Observation id matches the destination's filter, seen from
// inside the transaction that wrote it.
func (d *destination) matches(ctx context.Context, tx *fhirstore.Tx, id string) (bool, error) {
	if len(d.params) == 0 {
		return true, nil
	}
	params := url.Values{}
	for k, v := range d.params {
		params[k] = v
	}
	params.Set("_id", id)
	params.Set("_count", "1")
	res, err := tx.Search(ctx, fhirstore.SearchRequest{Type: d.typ, Params: params})
	if err != nil {
		return false, fmt.Errorf("hl7 destination %s: filter: %w", d.Name, err)
	}
	return len(res.Matches) > 0, nil
}

// checkFilters runs each destination's filter once, so that an unknown search parameter
// is reported at start rather than on the first write.
func (b *HL7Bridge) checkFilters(ctx context.Context) error {
	for _, d := range b.dests {
		params := url.Values{"_count": {"1"}}
		for k, v := range d.params {
			params[k] = v
		}
		if _, err := b.st.Search(ctx, fhirstore.SearchRequest{Type: d.typ, Params: params}); err != nil {
			return fmt.Errorf("hl7 destination %s: filter %q: %w", d.Name, d.Filter, err)
		}
	}
	return nil
}

// afterWrite is the outbound hook: in the transaction of an Observation (or of an alert
// about one), it writes an ORU^R01 to the outbox of every destination the Observation
// matches. A resource that cannot be encoded as ORU^R01 is skipped (and logged by type).
func (b *HL7Bridge) afterWrite(ctx context.Context, tx *fhirstore.Tx, c fhirstore.Change) error {
	r := c.Resource
	if r.Deleted || (r.Type != "Observation" && r.Type != "DetectedIssue") {
		return nil
	}
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return fmt.Errorf("hl7 outbound: decode %s: %w", r.Type, err)
	}
	obsID, obs, alert := r.ID, body, map[string]any(nil)
	if r.Type == "DetectedIssue" {
		alert = body
		obsID = implicatedObservation(body)
		if obsID == "" {
			return nil
		}
		obs = nil
	}
	var targets []*destination
	for _, d := range b.dests {
		if alert != nil && !d.Alerts {
			continue
		}
		ok, err := d.matches(ctx, tx, obsID)
		if err != nil {
			return err
		}
		if ok {
			targets = append(targets, d)
		}
	}
	if len(targets) == 0 {
		return nil
	}
	if obs == nil {
		if obs = readJSON(ctx, tx, "Observation/"+obsID); obs == nil {
			return nil
		}
	}
	patient := readJSON(ctx, tx, refString(obs["subject"]))
	device := readJSON(ctx, tx, refString(obs["device"]))
	for _, d := range targets {
		msg, err := hl7map.EncodeORU(obs, patient, device, hl7map.OutboundOptions{
			SendingApplication:   b.cfg.SendingApplication,
			SendingFacility:      b.cfg.SendingFacility,
			ReceivingApplication: d.recvApp,
			ReceivingFacility:    d.recvFac,
			ControlID:            strings.ReplaceAll(fhirstore.NewID(), "-", ""),
			Now:                  tx.Now(),
			Alert:                alert,
		})
		if err != nil {
			b.log.Warn("hl7 outbound: resource not sendable as ORU^R01", "type", r.Type, "destination", d.Name, "err", err)
			continue
		}
		payload, err := msg.Encode()
		if err != nil {
			b.log.Warn("hl7 outbound: encode failed", "type", r.Type, "destination", d.Name, "err", err)
			continue
		}
		if _, err := tx.Enqueue(ctx, d.Name, r.Type+"/"+r.ID, payload); err != nil {
			return err
		}
		name := d.Name
		tx.AfterCommit(func() { b.wake(name) })
	}
	return nil
}

// implicatedObservation is the id of the first Observation a DetectedIssue implicates.
func implicatedObservation(di map[string]any) string {
	imp, _ := di["implicated"].([]any)
	for _, i := range imp {
		if id, ok := strings.CutPrefix(refString(i), "Observation/"); ok {
			return id
		}
	}
	return ""
}

func refString(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["reference"].(string)
	return s
}

// readJSON reads a "Type/id" reference inside tx (without locking it, through search);
// nil when absent or not a local reference.
func readJSON(ctx context.Context, tx *fhirstore.Tx, ref string) map[string]any {
	typ, id, ok := strings.Cut(ref, "/")
	if !ok || !fhirstore.ValidID(id) {
		return nil
	}
	res, err := tx.Search(ctx, fhirstore.SearchRequest{Type: typ, Params: url.Values{"_id": {id}, "_count": {"1"}}})
	if err != nil || len(res.Matches) == 0 {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(res.Matches[0].Body, &m) != nil {
		return nil
	}
	return m
}

// wake tells the sender of destination (every sender for "") that work may be waiting.
func (b *HL7Bridge) wake(name string) {
	for _, d := range b.dests {
		if name == "" || d.Name == name {
			select {
			case d.wakeup <- struct{}{}:
			default:
			}
		}
	}
}

// runSender delivers the outbox of one destination in order until ctx ends: claim the
// head, send it, wait for the acknowledgment, and record the outcome. AA/CA completes the
// message; AE/CE parks it (the destination refuses its content: resending cannot help);
// AR/CR, a timeout or a connection failure retries it with a doubling backoff.
func (b *HL7Bridge) runSender(ctx context.Context, d *destination) {
	defer b.senders.Done()
	log := b.log.With("destination", d.Name)
	opts := mllp.ClientOptions{TLSConfig: d.tls, Timeout: b.cfg.SendTimeout, DialTimeout: b.cfg.SendTimeout, Logger: log}
	client := mllp.NewClient(d.Addr, opts)
	defer func() { client.Close() }()
	lease := b.cfg.SendTimeout*2 + 30*time.Second
	for ctx.Err() == nil {
		m, next, err := b.st.ClaimOutbox(ctx, d.Name, lease)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("hl7 outbox claim failed", "err", err)
			}
			b.idle(ctx, d, time.Now().Add(b.cfg.RetryMin))
			continue
		}
		if m == nil {
			b.idle(ctx, d, next)
			continue
		}
		if timedOut := b.deliver(ctx, log, client, m); timedOut {
			// A receiver that does not answer may be stuck on the connection: start afresh.
			client.Close()
			client = mllp.NewClient(d.Addr, opts)
		}
	}
}

// idle waits for a wake-up, the time next (when set), the poll interval or the end of ctx.
func (b *HL7Bridge) idle(ctx context.Context, d *destination, next time.Time) {
	wait := b.cfg.PollInterval
	if !next.IsZero() {
		wait = min(wait, max(time.Until(next), time.Millisecond))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-d.wakeup:
	case <-t.C:
	}
}

// deliver sends one claimed message and records the outcome; it reports whether the
// destination failed to answer in time.
func (b *HL7Bridge) deliver(ctx context.Context, log *slog.Logger, client *mllp.Client, m *fhirstore.OutboxMessage) (timedOut bool) {
	// The outcome is recorded even when ctx ends during the send (shutdown): the message is
	// then released for the next attempt.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	sctx, scancel := context.WithTimeout(ctx, b.cfg.SendTimeout)
	ack, err := client.Send(sctx, m.Payload)
	scancel()
	var outcome, reason string
	switch {
	case err != nil:
		outcome, reason = "retry", sendFailure(err)
		timedOut = strings.HasPrefix(reason, "timeout")
	default:
		code := ack.Get("MSA-1")
		reason = code
		if e := ack.Get("ERR-3"); e != "" {
			reason += " (ERR-3 " + e + ")"
		}
		switch hl7v2.AckCode(code) {
		case hl7v2.AA, hl7v2.CA:
			outcome = "sent"
		case hl7v2.AE, hl7v2.CE:
			outcome = "park"
		case hl7v2.AR, hl7v2.CR:
			outcome = "retry"
		default:
			outcome, reason = "park", "unknown acknowledgment code"
		}
	}
	var serr error
	switch outcome {
	case "sent":
		serr = b.st.CompleteOutbox(rctx, m.ID)
		log.Debug("hl7 message delivered", "outbox_id", m.ID, "attempts", m.Attempts)
	case "park":
		serr = b.st.ParkOutbox(rctx, m.ID, reason)
		log.Warn("hl7 message parked: the destination refused it", "outbox_id", m.ID, "reason", reason)
	default:
		next := time.Now().Add(b.backoff(m.Attempts))
		serr = b.st.RetryOutbox(rctx, m.ID, next, reason)
		log.Info("hl7 message not delivered; will retry", "outbox_id", m.ID, "attempts", m.Attempts, "reason", reason, "retry_at", next.UTC().Format(time.RFC3339))
	}
	if serr != nil {
		// The lease runs out and the message is sent again: the destination sees the
		// same MSH-10 and can recognise the duplicate.
		log.Error("hl7 outbox update failed", "outbox_id", m.ID, "err", serr)
	}
	return timedOut
}

// backoff is the wait after the given number of failed attempts.
func (b *HL7Bridge) backoff(attempts int) time.Duration {
	d := b.cfg.RetryMin
	for i := 1; i < attempts && d < b.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, b.cfg.RetryMax)
}

// sendFailure describes a failed send for the outbox (no content: addresses at most).
func sendFailure(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout: no acknowledgment"
	case errors.Is(err, context.Canceled):
		return "cancelled (shutdown)"
	}
	return "connection failed: " + err.Error()
}
