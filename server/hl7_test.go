package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirstore/storetest"
	"github.com/vigil-health/vigil/hl7v2"
	"github.com/vigil-health/vigil/hl7v2/mllp"
	"github.com/vigil-health/vigil/mappers/alerts"
	"github.com/vigil-health/vigil/server"
)

// hl7Env is a Vigil server with the HL7 bridge: FHIR and admin over HTTP, MLLP on its own
// port, all on 127.0.0.1.
type hl7Env struct {
	*testServer
	Bridge   *server.HL7Bridge
	MLLPAddr string
	mllp     *mllp.Server
	stopOnce sync.Once
}

// startHL7 starts the HTTP server, the bridge (with the alert hook, as vigil serve wires
// it) and an MLLP listener over st. Everything stops at cleanup, or at env.stop.
func startHL7(t testing.TB, st *fhirstore.Store, cfg server.HL7Config) *hl7Env {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = storetest.QuietLogger()
		if os.Getenv("VIGIL_TEST_HL7_LOG") != "" {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	if os.Getenv("VIGIL_TEST_NO_ALERTS") == "" {
		st.AddHook(server.NewAlertHook(alerts.DefaultRules(), storetest.QuietLogger()))
	}
	if n, err := strconv.Atoi(os.Getenv("VIGIL_TEST_COMMITTERS")); err == nil && cfg.Committers == 0 {
		cfg.Committers = n
	}
	bridge, err := server.NewHL7Bridge(st, cfg)
	if err != nil {
		t.Fatalf("NewHL7Bridge: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	srv := server.New(st, server.Config{BaseURL: base, Logger: storetest.QuietLogger(), Validator: sharedValidator()})
	srv.RegisterHL7Admin(bridge)
	bridge.Start()
	ts := &testServer{URL: base, FHIR: base + "/fhir", Store: st, srv: srv, done: make(chan error, 1),
		client: &http.Client{Timeout: 60 * time.Second}}
	go func() { ts.done <- srv.Serve(l) }()
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env := &hl7Env{testServer: ts, Bridge: bridge, MLLPAddr: ml.Addr().String(),
		mllp: &mllp.Server{Handler: bridge, Logger: storetest.QuietLogger()}}
	go env.mllp.Serve(ml)
	t.Cleanup(func() { env.stop(t) })
	return env
}

// stop shuts down in the order vigil serve does: MLLP, bridge, HTTP.
func (e *hl7Env) stop(t testing.TB) {
	e.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.mllp.Shutdown(ctx)
		e.Bridge.Close()
		e.testServer.stop(t)
	})
}

func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pcd01 is the 6-OBX PCD-01 fixture with control id id, and its heart rate set to hr.
func pcd01(t testing.TB, id, hr string) string {
	m := fixture(t, "hl7/pcd01_oru_r01_6obx.hl7")
	m = strings.Replace(m, "|PCD20261125093015002|", "|"+id+"|", 1)
	return strings.Replace(m, "|1.1.1.1|72|", "|1.1.1.1|"+hr+"|", 1)
}

// at moves the readings of a pcd01 message to a recent time, second seconds into the
// minute two minutes ago: a different time makes them new readings (a device Observation
// is identified by device, code and time), and a recent one counts for alerts.
func at(msg string, second int) string {
	t := time.Now().UTC().Truncate(time.Minute).Add(-2*time.Minute + time.Duration(second)*time.Second)
	return strings.ReplaceAll(msg, "20261125093000+0000", t.Format("20060102150405")+"+0000")
}

// count returns how many live resources a FHIR search over HTTP finds.
func (e *hl7Env) count(t testing.TB, query string) int {
	t.Helper()
	sep := "?"
	if strings.Contains(query, "?") {
		sep = "&"
	}
	r := e.do(t, "GET", query+sep+"_summary=count", nil)
	r.wantStatus(t, http.StatusOK)
	n, _ := r.json(t)["total"].(json.Number)
	v, _ := n.Int64()
	return int(v)
}

func send(t testing.TB, c *mllp.Client, msg string) *hl7v2.Message {
	t.Helper()
	ack, err := c.Send(context.Background(), []byte(msg))
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return ack
}

func TestHL7Inbound(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		st, _ := storetest.Open(t, b)
		env := startHL7(t, st, server.HL7Config{})
		c := mllp.NewClient(env.MLLPAddr, mllp.ClientOptions{Timeout: 30 * time.Second})
		defer c.Close()

		// A device report: ACK AA after the commit; searches find its codes.
		first := send(t, c, pcd01(t, "C-1", "72"))
		if got := first.Get("MSA-1") + " " + first.Get("MSA-2"); got != "AA C-1" {
			t.Fatalf("ACK = %q, want AA C-1", got)
		}
		queries := map[string]int{
			"Observation?code=http://loinc.org|8867-4":                                                                1, // heart rate, LOINC
			"Observation?code=urn:iso:std:iso:11073:10101|147842":                                                     1, // heart rate, MDC
			"Observation?code=urn:iso:std:iso:11073:10101|150456":                                                     1, // SpO2
			"Observation?code=http://loinc.org|85354-9":                                                               1, // the blood pressure panel
			"Observation?category=vital-signs&subject:Patient.identifier=urn:oid:2.16.840.1.113883.3.9999|MRN0012345": 5,
			"Patient?identifier=urn:oid:2.16.840.1.113883.3.9999|MRN0012345":                                          1,
			"Device": 1,
		}
		for q, want := range queries {
			if got := env.count(t, q); got != want {
				t.Errorf("%s: %d matches, want %d", q, got, want)
			}
		}

		// The same message again: the same ACK, byte for byte, and nothing new.
		again, err := c.Send(context.Background(), []byte(pcd01(t, "C-1", "72")))
		if err != nil {
			t.Fatal(err)
		}
		if again.String() != first.String() {
			t.Errorf("duplicate ACK differs:\n%q\n%q", again.String(), first.String())
		}
		if got := env.count(t, "Observation"); got != 5 {
			t.Errorf("Observations after the duplicate = %d, want 5", got)
		}

		// Refused messages: AE or AR with ERR, nothing stored, and the connection stays usable.
		refused := []struct {
			name, msg, code, err3 string
		}{
			{"wrong data types", fixture(t, "hl7/bad_field_types.hl7"), "AE", "102"},
			{"unsupported type", fixture(t, "hl7/bad_unknown_message_type.hl7"), "AR", "200"},
			{"implausible reading", pcd01(t, "C-BAD", "-5"), "AE", "102"},
		}
		for _, tc := range refused {
			t.Run(tc.name, func(t *testing.T) {
				ack := send(t, c, tc.msg)
				if got := ack.Get("MSA-1") + " ERR-3=" + ack.Get("ERR-3"); got != tc.code+" ERR-3="+tc.err3 {
					t.Errorf("ACK = %q, want %s ERR-3=%s", got, tc.code, tc.err3)
				}
			})
		}
		if got := env.count(t, "Observation"); got != 5 {
			t.Errorf("Observations after refused messages = %d, want 5", got)
		}

		// The connection still works: a laboratory report and an admission.
		// The laboratory asks for accept acknowledgments (MSH-15 AL, enhanced mode): CA.
		if ack := send(t, c, fixture(t, "hl7/lab_oru_r01.hl7")); ack.Get("MSA-1") != "CA" {
			t.Errorf("lab ORU ACK = %q, want CA", ack.Get("MSA-1"))
		}
		if got := env.count(t, "DiagnosticReport"); got != 1 {
			t.Errorf("DiagnosticReports = %d, want 1", got)
		}
		for _, f := range []string{"hl7/adt_a01.hl7", "hl7/adt_a08.hl7", "hl7map/adt_a03_discharge.hl7"} {
			if ack := send(t, c, fixture(t, f)); ack.Get("MSA-1") != "AA" {
				t.Errorf("%s ACK = %q (ERR-3 %s), want AA", f, ack.Get("MSA-1"), ack.Get("ERR-3"))
			}
		}
		if got := env.count(t, "Encounter?status=finished"); got != 1 {
			t.Errorf("finished Encounters after A01, A08, A03 = %d, want 1", got)
		}

		// A reading over its limit raises an alert, as ingest does.
		if ack := send(t, c, at(pcd01(t, "C-TACHY", "182"), 30)); ack.Get("MSA-1") != "AA" {
			t.Fatalf("tachycardia ACK = %q", ack.Get("MSA-1"))
		}
		if got := env.count(t, "DetectedIssue"); got < 1 {
			t.Errorf("DetectedIssues after a heart rate of 182 = %d, want an alert", got)
		}

		// Operators see the refused messages, with their errors and raw text.
		r := env.do(t, "GET", "/admin/hl7/messages?status=error", nil)
		r.wantStatus(t, http.StatusOK)
		list := r.json(t)["messages"].([]any)
		if len(list) != 3 {
			t.Fatalf("error entries = %d, want 3: %s", len(list), r.Body)
		}
		latest := list[0].(map[string]any)
		if latest["control_id"] != "C-BAD" || latest["ack_code"] != "AE" || latest["error"] == "" {
			t.Errorf("latest error entry = %v", latest)
		}
		one := env.do(t, "GET", fmt.Sprintf("/admin/hl7/messages/%v", latest["id"]), nil).json(t)
		if raw, _ := one["raw"].(string); !strings.Contains(raw, "|C-BAD|") {
			t.Errorf("entry raw = %q, want the message", raw)
		}
		ok := env.do(t, "GET", "/admin/hl7/messages?status=processed&_count=2", nil).json(t)
		if got := ok["messages"].([]any)[0].(map[string]any); got["control_id"] != "C-TACHY" || len(got["resources"].([]any)) < 2 {
			t.Errorf("latest processed entry = %v, want C-TACHY with its resources", got)
		}
		if ok["next"] == nil {
			t.Errorf("a full page has no next link: %v", ok)
		}
		env.do(t, "GET", "/admin/hl7/messages/999999", nil).wantStatus(t, http.StatusNotFound)
		env.do(t, "GET", "/admin/hl7/messages?status=bogus", nil).wantStatus(t, http.StatusBadRequest)
	})
}

// TestHL7ConcurrentSenders: messages of many connections share commits and all land, and
// a new patient sent on several connections at once is created once.
func TestHL7ConcurrentSenders(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		st, _ := storetest.Open(t, b)
		env := startHL7(t, st, server.HL7Config{})
		var wg sync.WaitGroup
		for conn := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := mllp.NewClient(env.MLLPAddr, mllp.ClientOptions{})
				defer c.Close()
				for i := range 10 {
					// Heart rates differ per connection and message: distinct readings.
					msg := at(pcd01(t, fmt.Sprintf("CC-%d-%d", conn, i), fmt.Sprint(60+conn*10+i)), conn*10+i)
					ack, err := c.Send(context.Background(), []byte(msg))
					if err != nil || ack.Get("MSA-1") != "AA" {
						t.Errorf("conn %d message %d: %v %v", conn, i, err, ack)
						return
					}
				}
			}()
		}
		wg.Wait()
		if got := env.count(t, "Patient"); got != 1 {
			t.Errorf("Patients = %d, want 1", got)
		}
		if got := env.count(t, "Observation?code=http://loinc.org|8867-4"); got != 40 {
			t.Errorf("heart rates = %d, want 40", got)
		}
	})
}

// TestHL7CrashBeforeACK: a message committed whose ACK never left (the server died) is
// recognised when the sender sends it again: the original ACK, no second copy.
func TestHL7CrashBeforeACK(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		dbURL := b.NewURL(t)
		ctx := context.Background()
		st, err := fhirstore.Open(ctx, dbURL, fhirstore.Options{Logger: storetest.QuietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		bridge, err := server.NewHL7Bridge(st, server.HL7Config{Logger: storetest.QuietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		bridge.Start()
		lost, err := bridge.HandleMessage(ctx, []byte(pcd01(t, "C-CRASH", "72")))
		if err != nil || lost == nil {
			t.Fatalf("first delivery: %v", err)
		}
		// The process dies here: the ACK is never written, the store is closed.
		bridge.Close()
		if ack, err := bridge.HandleMessage(ctx, []byte(pcd01(t, "C-LATE", "72"))); err == nil || ack != nil {
			t.Errorf("a message after Close = %q, %v; want an error and no ACK", ack, err)
		}
		st.Close()

		st2, err := fhirstore.Open(ctx, dbURL, fhirstore.Options{Logger: storetest.QuietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st2.Close() })
		env := startHL7(t, st2, server.HL7Config{})
		c := mllp.NewClient(env.MLLPAddr, mllp.ClientOptions{})
		defer c.Close()
		ack := send(t, c, pcd01(t, "C-CRASH", "72"))
		if !bytes.Equal([]byte(ack.String()), lost) {
			t.Errorf("ACK of the resend = %q, want the original %q", ack.String(), lost)
		}
		if got := env.count(t, "Observation"); got != 5 {
			t.Errorf("Observations = %d, want 5 (one copy)", got)
		}
	})
}

// receiver is a test MLLP destination that answers each frame by a script.
type receiver struct {
	mu       sync.Mutex
	script   []string // per frame received: "AR", "AE", "timeout", "AA"; then AA
	frames   int
	accepted []string // control ids acknowledged AA, in order
	srv      *mllp.Server
	addr     string
}

func startReceiver(t testing.TB, addr string, script ...string) *receiver {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var l net.Listener
	var err error
	for range 50 { // a restarted receiver takes its old port back
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{script: script, addr: l.Addr().String()}
	r.srv = &mllp.Server{Logger: storetest.QuietLogger(), Handler: mllp.HandlerFunc(func(ctx context.Context, raw []byte) ([]byte, error) {
		m, err := hl7v2.Parse(raw)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		step := "AA"
		if r.frames < len(r.script) {
			step = r.script[r.frames]
		}
		r.frames++
		if step == "AA" {
			r.accepted = append(r.accepted, m.ControlID())
		}
		r.mu.Unlock()
		if step == "timeout" {
			// Answer nothing, after the sender's timeout.
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
			}
			return nil, nil
		}
		code := map[string]hl7v2.AckCode{"AA": hl7v2.CA, "AE": hl7v2.CE, "AR": hl7v2.CR}[step]
		ack, err := hl7v2.NewACK(m, code)
		if err != nil {
			return nil, err
		}
		return ack.Encode()
	})}
	go r.srv.Serve(l)
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) stop() { r.srv.Close() }

func (r *receiver) acceptedIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.accepted...)
}

// vital writes a heart-rate Observation of patient ref through the store, as any door would.
func vital(t testing.TB, st *fhirstore.Store, patientRef, value string) string {
	t.Helper()
	var id string
	err := st.InTx(context.Background(), func(tx *fhirstore.Tx) error {
		r, err := tx.Create(context.Background(), "Observation", heartRateAt(value, patientRef))
		if err == nil {
			id = r.ID
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func heartRateAt(value, subject string) map[string]any {
	o := heartRate(value, subject)
	o["effectiveDateTime"] = time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	return o
}

// outboxOrder waits until the receiver has accepted n messages and returns the references
// of the outbox rows they carried, in acceptance order.
func waitAccepted(t testing.TB, r *receiver, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ids := r.acceptedIDs(); len(ids) >= n {
			return ids
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("receiver accepted %d messages, want %d", len(r.acceptedIDs()), n)
	return nil
}

func TestHL7Outbound(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		dbURL := b.NewURL(t)
		ctx := context.Background()
		st, err := fhirstore.Open(ctx, dbURL, fhirstore.Options{Logger: storetest.QuietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		recv := startReceiver(t, "", "AR", "timeout", "AA")
		cfg := server.HL7Config{
			Destinations: []server.HL7Destination{{Name: "ehr", Addr: recv.addr, Filter: "Observation?category=vital-signs", ReceivingApplication: "EHR"}},
			SendTimeout:  300 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond,
			PollInterval: 50 * time.Millisecond, DatabaseURL: dbURL,
		}
		env := startHL7(t, st, cfg)
		pat := "Patient/" + env.create(t, patient("Outbound", "urn:test|OUT-1"))
		var refs []string
		for _, v := range []string{"71", "72", "73"} {
			refs = append(refs, "Observation/"+vital(t, st, pat, v))
		}
		// Not a vital sign: filtered out.
		lab := map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "note"},
			"subject": map[string]any{"reference": pat}, "valueString": "x"}
		env.create(t, lab)

		ids := waitAccepted(t, recv, 3)
		// The receiver counts a message when it writes the ACK; the sender marks the row
		// sent only after reading it, a moment later.
		var sent []*fhirstore.OutboxMessage
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			sent, err = st.OutboxMessages(ctx, fhirstore.OutboxQuery{Destination: "ehr"})
			if err != nil {
				t.Fatal(err)
			}
			if allSent(sent) || time.Now().After(deadline) {
				break
			}
		}
		if len(sent) != 3 {
			t.Fatalf("outbox rows = %d, want 3 (the filter keeps vital signs)", len(sent))
		}
		// Outbox rows are newest first; the receiver saw them oldest first, each once.
		var wantIDs, gotRefs []string
		for i := len(sent) - 1; i >= 0; i-- {
			m, err := hl7v2.Parse(sent[i].Payload)
			if err != nil {
				t.Fatal(err)
			}
			wantIDs = append(wantIDs, m.ControlID())
			gotRefs = append(gotRefs, sent[i].Ref)
			if sent[i].Status != fhirstore.OutboxSent {
				t.Errorf("row %d status %s, want sent", sent[i].ID, sent[i].Status)
			}
		}
		if d := diff(wantIDs, ids); d != "" {
			t.Errorf("accepted control ids (-want +got):\n%s", d)
		}
		if d := diff(refs, gotRefs); d != "" {
			t.Errorf("outbox refs (-want +got):\n%s", d)
		}
		if sent[len(sent)-1].Attempts != 3 {
			t.Errorf("first message attempts = %d, want 3 (AR, timeout, AA)", sent[len(sent)-1].Attempts)
		}
		time.Sleep(200 * time.Millisecond)
		if got := recv.acceptedIDs(); len(got) != 3 {
			t.Errorf("accepted %d messages after delivery, want exactly 3", len(got))
		}

		// The destination goes away; messages wait in the outbox across a restart.
		recv.stop()
		more := []string{"Observation/" + vital(t, st, pat, "74"), "Observation/" + vital(t, st, pat, "75")}
		env.stop(t)
		st.Close()
		st2, err := fhirstore.Open(ctx, dbURL, fhirstore.Options{Logger: storetest.QuietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st2.Close() })
		recv2 := startReceiver(t, recv.addr, "AE")
		env2 := startHL7(t, st2, cfg)
		ids2 := waitAccepted(t, recv2, 1)
		// The first of them was refused with AE: parked; the second went on.
		parked := env2.do(t, "GET", "/admin/hl7/outbox?status=parked", nil).json(t)["messages"].([]any)
		if len(parked) != 1 || parked[0].(map[string]any)["ref"] != more[0] {
			t.Fatalf("parked = %v, want %s", parked, more[0])
		}
		pid := parked[0].(map[string]any)["id"]
		env2.do(t, "POST", fmt.Sprintf("/admin/hl7/outbox/%v/retry", pid), nil).wantStatus(t, http.StatusOK)
		ids2 = waitAccepted(t, recv2, 2)
		all, _ := st2.OutboxMessages(ctx, fhirstore.OutboxQuery{Destination: "ehr", Status: fhirstore.OutboxSent})
		if len(all) != 5 || len(ids2) != 2 {
			t.Errorf("sent = %d (want 5), accepted after restart = %d (want 2)", len(all), len(ids2))
		}
		env2.do(t, "POST", fmt.Sprintf("/admin/hl7/outbox/%v/retry", pid), nil).wantStatus(t, http.StatusConflict)
		env2.do(t, "GET", "/admin/hl7/outbox?status=nope", nil).wantStatus(t, http.StatusBadRequest)
	})
}

func TestLoadHL7Destinations(t *testing.T) {
	ds, err := server.LoadHL7Destinations([]byte(fixture(t, "hl7bridge/destinations.json")))
	if err != nil {
		t.Fatalf("the example destinations file: %v", err)
	}
	if len(ds) != 2 || ds[0].Name != "ehr-vitals" || !ds[0].Alerts || !ds[1].TLS {
		t.Errorf("destinations = %+v", ds)
	}
	tests := []struct {
		name, json, want string
	}{
		{"not an array", `{"name":"x"}`, "cannot unmarshal"},
		{"unknown field", `[{"name":"x","addr":"h:1","filter":"Observation","colour":"red"}]`, "unknown field"},
		{"no name", `[{"addr":"h:1","filter":"Observation"}]`, "name"},
		{"bad addr", `[{"name":"x","addr":"nohost","filter":"Observation"}]`, "host:port"},
		{"not Observation", `[{"name":"x","addr":"h:1","filter":"Patient?active=true"}]`, "Observation search"},
		{"control parameter", `[{"name":"x","addr":"h:1","filter":"Observation?_count=1"}]`, "_count"},
		{"missing CA file", `[{"name":"x","addr":"h:1","filter":"Observation","tls":true,"ca_file":"/nonexistent.pem"}]`, "ca_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := server.LoadHL7Destinations([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestHL7UnknownFilterParameter: a filter naming a search parameter that does not exist is
// refused at start, not on the first write.
func TestHL7UnknownFilterParameter(t *testing.T) {
	st, _ := storetest.Open(t, storetest.Backends()[0])
	_, err := server.NewHL7Bridge(st, server.HL7Config{Logger: storetest.QuietLogger(),
		Destinations: []server.HL7Destination{{Name: "x", Addr: "127.0.0.1:1", Filter: "Observation?no-such-param=1"}}})
	if err == nil || !strings.Contains(err.Error(), "no-such-param") {
		t.Errorf("NewHL7Bridge = %v, want an error naming the parameter", err)
	}
}

// FuzzHL7HandleMessage: whatever bytes arrive, the bridge answers with an acknowledgment or
// an error, never panics, and stores nothing for a message it does not accept.
func FuzzHL7HandleMessage(f *testing.F) {
	for _, name := range []string{"hl7/pcd01_oru_r01_6obx.hl7", "hl7/lab_oru_r01.hl7", "hl7/adt_a01.hl7",
		"hl7/bad_field_types.hl7", "hl7/bad_msh2.hl7", "hl7/escapes.hl7", "hl7/ack_aa.hl7"} {
		f.Add([]byte(fixture(f, name)))
	}
	st, _ := storetest.Open(f, storetest.Backends()[0])
	bridge, err := server.NewHL7Bridge(st, server.HL7Config{Logger: storetest.QuietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	bridge.Start()
	f.Cleanup(bridge.Close)
	f.Fuzz(func(t *testing.T, raw []byte) {
		ack, err := bridge.HandleMessage(context.Background(), raw)
		if ack == nil {
			return
		}
		m, perr := hl7v2.Parse(ack)
		if perr != nil {
			t.Fatalf("the bridge answered an unparseable acknowledgment (err %v): %v", err, perr)
		}
		if !hl7v2.IsACK(m) {
			t.Fatalf("the answer is not an acknowledgment: %q", ack)
		}
	})
}

// TestHL7OutboundAlerts: a destination with alerts gets, besides each matching
// Observation, the DetectedIssue it raised, as the Observation's ORU^R01 with one more OBX
// row; a destination without alerts gets the Observation only.
func TestHL7OutboundAlerts(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		st, _ := storetest.Open(t, b)
		recv := startReceiver(t, "")
		env := startHL7(t, st, server.HL7Config{
			Destinations: []server.HL7Destination{
				{Name: "ward", Addr: recv.addr, Filter: "Observation?category=vital-signs", Alerts: true},
				{Name: "archive", Addr: recv.addr, Filter: "Observation"},
			},
			PollInterval: 50 * time.Millisecond,
		})
		pat := "Patient/" + env.create(t, patient("Alert", "urn:test|AL-1"))
		obs := "Observation/" + vital(t, st, pat, "182")
		waitAccepted(t, recv, 3)
		rows, err := st.OutboxMessages(context.Background(), fhirstore.OutboxQuery{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]string{}
		for _, r := range rows {
			kind := strings.SplitN(r.Ref, "/", 2)[0]
			got[r.Destination] = append(got[r.Destination], kind)
			m, err := hl7v2.Parse(r.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if kind == "DetectedIssue" && len(m.SegmentsNamed("OBX")) < 2 {
				t.Errorf("the alert message has %d OBX rows, want the reading and the alert", len(m.SegmentsNamed("OBX")))
			}
			if r.Ref != obs && kind == "Observation" {
				t.Errorf("outbox ref %s, want %s", r.Ref, obs)
			}
		}
		want := map[string][]string{"ward": {"Observation", "DetectedIssue"}, "archive": {"Observation"}}
		if d := diff(want, got); d != "" {
			t.Errorf("outbox rows by destination, newest first (-want +got):\n%s", d)
		}
	})
}

func allSent(rows []*fhirstore.OutboxMessage) bool {
	for _, r := range rows {
		if r.Status != fhirstore.OutboxSent {
			return false
		}
	}
	return true
}
