package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/hl7v2"
	hl7map "github.com/vigil-health/vigil/mappers/hl7"
)

// HL7Config configures the HL7 v2 bridge.
type HL7Config struct {
	// Logger receives bridge events: message types and control ids, never content.
	Logger *slog.Logger
	// Map tunes the mapping of inbound messages (identifier systems, time zone). Its Now is
	// set per message: device readings are checked like ingest checks them.
	Map hl7map.Options
	// MaxBatch is how many inbound messages, from any connections, may share one commit
	// (each in its own savepoint); 1 commits every message alone. Default 64.
	MaxBatch int
	// Committers is how many batches are written at once. Default 4.
	Committers int

	// Destinations receive ORU^R01 messages for the resources that match their filter.
	Destinations []HL7Destination
	// SendingApplication and SendingFacility are MSH-3 and MSH-4 of outbound messages.
	// Default VIGIL.
	SendingApplication, SendingFacility hl7v2.HD
	// SendTimeout bounds the wait for a destination's acknowledgment. Default 30s.
	SendTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between attempts to deliver a message: the
	// wait doubles from RetryMin up to RetryMax. Defaults 1s and 5m.
	RetryMin, RetryMax time.Duration
	// PollInterval is how often an idle sender looks for work that no wake-up announced
	// (messages of another process on SQLite, a missed notification). Default 5s.
	PollInterval time.Duration
	// DatabaseURL, when it names PostgreSQL, lets senders LISTEN for messages enqueued by
	// other server processes.
	DatabaseURL string
}

// hl7Acceptance is what the listener accepts: device and laboratory results, admissions,
// registrations, updates and discharges.
var hl7Acceptance = hl7v2.Acceptance{MessageTypes: map[string][]string{
	"ORU": {"R01"},
	"ADT": {"A01", "A03", "A04", "A08", "A28", "A31"},
}}

// HL7Bridge connects HL7 v2 to the store. Inbound, it is the MLLP Handler: each message is
// logged, mapped and committed with its resources before its acknowledgment is returned,
// and messages of concurrent connections share commits. Outbound, it is a store Hook that
// writes an ORU^R01 to the outbox for every Observation matching a destination, and it
// runs one sender per destination (Start).
type HL7Bridge struct {
	st    *fhirstore.Store
	cfg   HL7Config
	log   *slog.Logger
	acker hl7v2.Acker

	jobs     chan *hl7Job
	stopOnce sync.Once
	stop     chan struct{} // closed by Close: committers finish their batch and exit
	stopped  chan struct{} // closed once every committer has exited
	wg       sync.WaitGroup

	dests   []*destination
	senders sync.WaitGroup
	cancel  context.CancelFunc
}

// NewHL7Bridge builds the bridge over st and registers its outbound hook with st (a no-op
// without destinations). Call Start to run its committers and senders, and Close to stop
// them once the MLLP server has shut down.
func NewHL7Bridge(st *fhirstore.Store, cfg HL7Config) (*HL7Bridge, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 64
	}
	if cfg.Committers <= 0 {
		cfg.Committers = 4
	}
	if cfg.SendingApplication.NamespaceID == "" && cfg.SendingApplication.UniversalID == "" {
		cfg.SendingApplication = hl7v2.HD{NamespaceID: "VIGIL"}
	}
	if cfg.SendingFacility.NamespaceID == "" && cfg.SendingFacility.UniversalID == "" {
		cfg.SendingFacility = hl7v2.HD{NamespaceID: "VIGIL"}
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 30 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(5*time.Minute, cfg.RetryMin)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	b := &HL7Bridge{st: st, cfg: cfg, log: cfg.Logger, jobs: make(chan *hl7Job, cfg.MaxBatch*cfg.Committers),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	seen := map[string]bool{}
	for i, d := range cfg.Destinations {
		dd, err := newDestination(d)
		if err != nil {
			return nil, fmt.Errorf("hl7 destination %d: %w", i+1, err)
		}
		if seen[dd.Name] {
			return nil, fmt.Errorf("hl7 destination %d: the name %q is used twice", i+1, dd.Name)
		}
		seen[dd.Name] = true
		b.dests = append(b.dests, dd)
	}
	if len(b.dests) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.checkFilters(ctx); err != nil {
			return nil, err
		}
		st.AddHook(fhirstore.HookFunc(b.afterWrite))
	}
	return b, nil
}

// Start runs the committers of inbound messages and the senders of the destinations until
// Close.
func (b *HL7Bridge) Start() {
	for range b.cfg.Committers {
		b.wg.Add(1)
		go b.commitLoop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	for _, d := range b.dests {
		b.senders.Add(1)
		go b.runSender(ctx, d)
	}
	if len(b.dests) > 0 && b.cfg.DatabaseURL != "" {
		b.senders.Add(1)
		go func() {
			defer b.senders.Done()
			if err := b.st.ListenOutbox(ctx, b.cfg.DatabaseURL, b.wake); err != nil {
				b.log.Warn("hl7 outbox listener stopped; senders poll instead", "err", err)
			}
		}()
	}
}

// Close stops the senders (a message in flight is released for the next start) and the
// committers. Shut the MLLP server down first: messages still waiting for a commit fail.
func (b *HL7Bridge) Close() {
	b.stopOnce.Do(func() {
		if b.cancel != nil {
			b.cancel()
		}
		b.senders.Wait()
		close(b.stop)
		b.wg.Wait()
		close(b.stopped)
	})
}

// errBridgeStopped fails messages that arrive after Close.
var errBridgeStopped = errors.New("hl7: bridge stopped")

// hl7Job is one inbound message waiting for a commit.
type hl7Job struct {
	ctx    context.Context
	msg    *hl7v2.Message
	raw    []byte
	key    fhirstore.InboundMessage
	mapped *hl7map.Result
	done   chan struct{}

	// Set by the committer.
	ack       []byte
	err       error
	resources []string
}

// HandleMessage implements mllp.Handler: it returns the acknowledgment of raw once the
// message and what it maps to are committed, or once a duplicate is recognised (the
// original acknowledgment again). Refused messages are logged and answered AR or AE with
// ERR segments.
func (b *HL7Bridge) HandleMessage(ctx context.Context, raw []byte) ([]byte, error) {
	m, err := hl7v2.Parse(raw)
	if err != nil {
		b.log.Warn("hl7 message does not parse", "err", err, "bytes", len(raw))
		b.record(ctx, &fhirstore.InboundMessage{Status: fhirstore.MessageError, Error: safeText(err), Raw: raw})
		return nil, err
	}
	if hl7v2.IsACK(m) {
		return nil, nil // an acknowledgment is never acknowledged
	}
	mt := m.MessageType()
	entry := fhirstore.InboundMessage{
		Sender:    m.Header().Field(3).String() + "|" + m.Header().Field(4).String(),
		ControlID: m.ControlID(),
		Type:      strings.Trim(mt.Code+"^"+mt.Trigger, "^"),
		Raw:       raw,
	}
	log := b.log.With("control_id", entry.ControlID, "type", entry.Type)
	if entry.ControlID == "" {
		entry.Sender = ""
	}
	if err := hl7Acceptance.Check(m); err != nil {
		return b.refuse(ctx, log, m, entry, err)
	}
	opts := b.cfg.Map
	opts.Now = b.st.Now()
	mapped, err := hl7map.MapMessage(m, opts)
	if err != nil {
		return b.refuse(ctx, log, m, entry, err)
	}
	j := &hl7Job{ctx: ctx, msg: m, raw: raw, key: entry, mapped: mapped, done: make(chan struct{})}
	select {
	case <-b.stop:
		return nil, errBridgeStopped
	default:
	}
	select {
	case b.jobs <- j:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.stop:
		return nil, errBridgeStopped
	}
	// Once queued the job is answered whatever ctx does: it may be in a commit already.
	// Only a job queued as the committers stopped is never taken.
	select {
	case <-j.done:
	case <-b.stopped:
		select {
		case <-j.done:
		default:
			return nil, errBridgeStopped
		}
	}
	if j.err != nil {
		log.Error("hl7 message not stored", "err", j.err)
		entry.Status, entry.Error = fhirstore.MessageError, "not stored: "+safeText(j.err)
		entry.AckCode, entry.Ack = b.errorACK(m, j.err)
		if orig := b.record(ctx, &entry); orig != nil {
			return orig.Ack, nil
		}
		return entry.Ack, j.err
	}
	log.Debug("hl7 message stored", "resources", len(j.resources))
	return j.ack, nil
}

// refuse logs a message refused before any write and returns its AR/AE; a resend of a
// message processed earlier gets its original acknowledgment instead.
func (b *HL7Bridge) refuse(ctx context.Context, log *slog.Logger, m *hl7v2.Message, entry fhirstore.InboundMessage, err error) ([]byte, error) {
	entry.Status, entry.Error = fhirstore.MessageError, safeText(err)
	entry.AckCode, entry.Ack = b.errorACK(m, err)
	log.Info("hl7 message refused", "ack", entry.AckCode, "err", entry.Error)
	if orig := b.record(ctx, &entry); orig != nil {
		return orig.Ack, nil
	}
	if entry.Ack == nil {
		return nil, err
	}
	return entry.Ack, nil
}

// record logs a failed message; it returns the processed entry when the message turns out
// to be a duplicate of one.
func (b *HL7Bridge) record(ctx context.Context, m *fhirstore.InboundMessage) *fhirstore.InboundMessage {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	orig, err := b.st.RecordMessage(rctx, m)
	if err != nil && orig == nil {
		b.log.Warn("hl7 message log not written", "control_id", m.ControlID, "err", err)
	}
	return orig
}

// errorACK builds the acknowledgment of a failed message, with one ERR segment per problem.
func (b *HL7Bridge) errorACK(m *hl7v2.Message, err error) (string, []byte) {
	code, ok := hl7v2.ResponseCode(m, err)
	if !ok {
		return "", nil
	}
	var errs []*hl7v2.Error
	var me *hl7map.MappingError
	if errors.As(err, &me) {
		errs = me.Problems
	} else {
		errs = []*hl7v2.Error{hl7v2.AsError(err)}
	}
	ack, aerr := b.acker.NewACK(m, code, errs...)
	if aerr != nil {
		return "", nil
	}
	out, aerr := ack.Encode()
	if aerr != nil {
		return "", nil
	}
	return string(code), out
}

// safeText is the text of an error for the log and the message log: hl7v2 and mapping
// errors never quote message content; any other error is reduced to its table 0357 text.
func safeText(err error) string {
	var he *hl7v2.Error
	if errors.As(err, &he) {
		return err.Error()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "cancelled"
	}
	return hl7v2.CodeInternalError.Text()
}

// commitLoop writes queued messages in batches: it takes the first waiting message and its
// share of the others already waiting (up to MaxBatch), and commits them together.
func (b *HL7Bridge) commitLoop() {
	defer b.wg.Done()
	batch := make([]*hl7Job, 0, b.cfg.MaxBatch)
	for {
		var j *hl7Job
		select {
		case j = <-b.jobs:
		case <-b.stop:
			b.drain()
			return
		}
		batch = append(batch[:0], j)
		// A fair share of what is waiting: idle committers take the rest and write it in
		// parallel (a message's writes take longer than a commit's fsync), while a long
		// queue still fills batches up to MaxBatch.
		limit := min(b.cfg.MaxBatch, 1+len(b.jobs)/b.cfg.Committers)
	fill:
		for len(batch) < limit {
			select {
			case j := <-b.jobs:
				batch = append(batch, j)
			default:
				break fill
			}
		}
		b.commit(batch)
	}
}

// drain fails the messages still queued at Close.
func (b *HL7Bridge) drain() {
	for {
		select {
		case j := <-b.jobs:
			j.err = errBridgeStopped
			close(j.done)
		default:
			return
		}
	}
}

// commit runs a batch in one transaction, each message in its own savepoint, and answers
// every message after the commit.
func (b *HL7Bridge) commit(batch []*hl7Job) {
	ctx := context.Background()
	err := b.st.InTx(ctx, func(tx *fhirstore.Tx) error {
		for _, j := range batch {
			j.ack, j.err, j.resources = nil, nil, nil
			if err := j.ctx.Err(); err != nil {
				j.err = err
				continue
			}
			err := tx.Savepoint(ctx, func() error { return b.store(ctx, tx, j) })
			if errors.Is(err, fhirstore.ErrRetry) {
				return err
			}
			if err != nil {
				// Logged as an error entry in a savepoint of its own, so the failure is
				// visible even though the message's writes were rolled back.
				j.err, j.resources = err, nil
				if e := b.failInTx(ctx, tx, j, err); errors.Is(e, fhirstore.ErrRetry) {
					return e
				}
			}
		}
		return nil
	})
	for _, j := range batch {
		if err != nil && j.err == nil {
			j.err = err
		}
		close(j.done)
	}
}

// failInTx records a message whose writes failed, with its AE, in the batch's transaction;
// j.ack becomes that AE, so the sender learns of the failure at once.
func (b *HL7Bridge) failInTx(ctx context.Context, tx *fhirstore.Tx, j *hl7Job, cause error) error {
	return tx.Savepoint(ctx, func() error {
		e := j.key
		prev, err := tx.ClaimMessage(ctx, &e)
		if err != nil {
			return err
		}
		if prev != nil && prev.Status == fhirstore.MessageProcessed {
			j.ack, j.err, j.resources = prev.Ack, nil, prev.Resources
			return nil
		}
		e.Status, e.Error = fhirstore.MessageError, "not stored: "+storeErrorText(cause)
		e.AckCode, e.Ack = b.errorACK(j.msg, cause)
		if err := tx.FinishMessage(ctx, &e); err != nil {
			return err
		}
		if e.Ack != nil {
			j.ack, j.err = e.Ack, nil
		}
		return nil
	})
}

// storeErrorText describes a write failure without quoting content.
func storeErrorText(err error) string {
	var he *hl7v2.Error
	if errors.As(err, &he) {
		return err.Error()
	}
	switch {
	case errors.Is(err, fhirstore.ErrInvalid):
		return "a mapped resource is invalid"
	case errors.Is(err, fhirstore.ErrConflict):
		return "conflict with stored data"
	}
	return hl7v2.CodeInternalError.Text()
}

// errAlreadyProcessed ends a message's savepoint when its log entry turns out to be
// processed already (a resend, or a concurrent copy that committed first): its writes roll
// back and failInTx answers with the original acknowledgment.
var errAlreadyProcessed = errors.New("hl7: message already processed")

// store writes one message inside the batch transaction: its resources, then its log
// entry with the ACK in the same statement that detects a duplicate (which waits for a
// concurrent copy of the message to commit or roll back).
func (b *HL7Bridge) store(ctx context.Context, tx *fhirstore.Tx, j *hl7Job) error {
	e := j.key
	before := len(tx.Changes())
	if err := b.writeResult(ctx, tx, j.mapped); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, c := range tx.Changes()[before:] {
		ref := c.Resource.Type + "/" + c.Resource.ID
		if !seen[ref] {
			seen[ref] = true
			j.resources = append(j.resources, ref)
		}
	}
	e.Status, e.Resources = fhirstore.MessageProcessed, j.resources
	if code, ok := hl7v2.ResponseCode(j.msg, nil); ok {
		ack, err := b.acker.NewACK(j.msg, code)
		if err != nil {
			return fmt.Errorf("hl7: build ACK: %w", err)
		}
		if e.Ack, err = ack.Encode(); err != nil {
			return fmt.Errorf("hl7: encode ACK: %w", err)
		}
		e.AckCode = string(code)
	}
	recorded, err := tx.RecordProcessed(ctx, &e)
	if err != nil {
		return err
	}
	if !recorded {
		return errAlreadyProcessed
	}
	j.ack = e.Ack
	return nil
}

// writeResult writes the resources of a mapped message as a transaction Bundle would:
// it resolves every entry's identity first (an existing match of its condition, or a new
// id), rewrites the urn:uuid references between entries, then creates, updates or keeps
// each resource. Mapped resources are built by Vigil and not validated again (as ingest).
func (b *HL7Bridge) writeResult(ctx context.Context, tx *fhirstore.Tx, res *hl7map.Result) error {
	type plan struct {
		typ, id  string
		body     map[string]any
		exists   bool
		update   bool
		location string
	}
	plans := make([]plan, len(res.Entries))
	mapping := make(map[string]string, len(res.Entries))
	conds := make([]url.Values, len(res.Entries))
	var keys []string
	for i, e := range res.Entries {
		if e.IfNoneExist == "" {
			continue
		}
		q, err := url.ParseQuery(e.IfNoneExist)
		if err != nil {
			return fmt.Errorf("hl7: entry %d: malformed match condition: %w", i, fhirstore.ErrInvalid)
		}
		typ, _ := e.Resource["resourceType"].(string)
		conds[i] = q
		keys = append(keys, conditionKey(typ, q))
	}
	// Concurrent messages about one new patient or device must not create it twice.
	if err := tx.LockKeys(ctx, keys...); err != nil {
		return err
	}
	// The readings' own identifiers (one per Observation, unique by construction) are
	// looked up in one query per identifier system.
	readings := map[string][]string{} // system -> values
	for i, e := range res.Entries {
		if sys, code, ok := readingCondition(e, conds[i]); ok {
			readings[sys] = append(readings[sys], code)
		}
	}
	known := map[string]string{} // system|value -> id
	for sys, values := range readings {
		found, err := tx.MatchIdentifiers(ctx, "Observation", sys, values)
		if err != nil {
			return fmt.Errorf("hl7: match Observations: %w", err)
		}
		for v, id := range found {
			known[sys+"|"+v] = id
		}
	}
	for i, e := range res.Entries {
		typ, _ := e.Resource["resourceType"].(string)
		p := plan{typ: typ, body: copyTree(e.Resource).(map[string]any), update: e.UpdateIfExists}
		if sys, code, ok := readingCondition(e, conds[i]); ok {
			if id, found := known[sys+"|"+code]; found {
				p.id, p.exists = id, true
			}
		} else if q := conds[i]; q != nil {
			ids, err := matchCondition(ctx, tx, typ, q)
			if err != nil {
				return err
			}
			switch len(ids) {
			case 0:
			case 1:
				p.id, p.exists = ids[0], true
			default:
				return &hl7v2.Error{Code: hl7v2.CodeDuplicateKey,
					Message: fmt.Sprintf("the identifier of the %s matches more than one stored resource", typ)}
			}
		}
		if p.id == "" {
			p.id = fhirstore.NewID()
		}
		if e.FullURL != "" {
			mapping[e.FullURL] = typ + "/" + p.id
		}
		plans[i] = p
	}
	for _, p := range plans {
		rewriteRefs(p.body, func(ref string) string {
			if t, ok := mapping[ref]; ok {
				return t
			}
			return ref
		}, mapping)
	}
	// New resources are created per type, in the order of their first entry, with one
	// CreateMany each (the Observations of an ORU in a few statements).
	var typeOrder []string
	newIDs := map[string][]string{}
	newBodies := map[string][]map[string]any{}
	for _, p := range plans {
		if p.exists {
			continue
		}
		if _, seen := newIDs[p.typ]; !seen {
			typeOrder = append(typeOrder, p.typ)
		}
		newIDs[p.typ] = append(newIDs[p.typ], p.id)
		newBodies[p.typ] = append(newBodies[p.typ], p.body)
	}
	for _, typ := range typeOrder {
		if _, err := tx.CreateMany(ctx, typ, newIDs[typ], newBodies[typ]); err != nil {
			return fmt.Errorf("hl7: create %s: %w", typ, err)
		}
	}
	for _, p := range plans {
		switch {
		case !p.exists:
		case p.update:
			body := p.body
			if _, _, err := tx.Update(ctx, p.typ, p.id, "PUT", func(*fhirstore.Resource) (map[string]any, error) {
				return body, nil
			}); err != nil {
				return fmt.Errorf("hl7: update %s: %w", p.typ, err)
			}
		}
	}
	return nil
}

// readingCondition reports whether an entry is an Observation matched by one identifier
// with a system (a reading's identifier), and returns it.
func readingCondition(e hl7map.Entry, q url.Values) (system, code string, ok bool) {
	if q == nil || e.Resource["resourceType"] != "Observation" || len(q) != 1 || len(q["identifier"]) != 1 {
		return "", "", false
	}
	v := q["identifier"][0]
	if strings.Contains(v, `\`) {
		return "", "", false
	}
	system, code, ok = strings.Cut(v, "|")
	return system, code, ok && system != "" && code != ""
}

// matchCondition returns up to two ids of live resources of typ matching q. The usual
// condition, one identifier, is answered from the token index directly.
func matchCondition(ctx context.Context, tx *fhirstore.Tx, typ string, q url.Values) ([]string, error) {
	if vs := q["identifier"]; len(q) == 1 && len(vs) == 1 && !strings.Contains(vs[0], `\`) {
		sys, code, hasSys := strings.Cut(vs[0], "|")
		if !hasSys {
			sys, code = "", vs[0]
		}
		ids, err := tx.MatchIdentifier(ctx, typ, sys, hasSys, code, 2)
		if err != nil {
			return nil, fmt.Errorf("hl7: match %s: %w", typ, err)
		}
		return ids, nil
	}
	params := url.Values{}
	for k, v := range q {
		params[k] = slices.Clone(v)
	}
	params.Set("_count", "2")
	params.Set("_sort", "_id")
	sr, err := tx.Search(ctx, fhirstore.SearchRequest{Type: typ, Params: params})
	if err != nil {
		return nil, fmt.Errorf("hl7: match %s: %w", typ, err)
	}
	ids := make([]string, 0, len(sr.Matches))
	for _, r := range sr.Matches {
		ids = append(ids, r.ID)
	}
	if sr.Next != "" && len(ids) < 2 {
		ids = append(ids, "")
	}
	return ids, nil
}

// copyTree copies a decoded JSON tree, so that a transaction run again starts from the
// mapped resources as they were.
func copyTree(v any) any {
	switch n := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(n))
		for k, vv := range n {
			m[k] = copyTree(vv)
		}
		return m
	case []any:
		s := make([]any, len(n))
		for i, vv := range n {
			s[i] = copyTree(vv)
		}
		return s
	}
	return v
}
