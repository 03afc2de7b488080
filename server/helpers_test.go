package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirstore/storetest"
	"github.com/vigil-health/vigil/fhirvalidate"
	"github.com/vigil-health/vigil/server"
)

// sharedValidator is built once: every test server validates with it (it is safe for
// concurrent use and costs a little to build).
var sharedValidator = sync.OnceValue(func() *fhirvalidate.Validator {
	return fhirvalidate.New(fhirvalidate.Options{})
})

// testServer is a Vigil server listening on 127.0.0.1 on a free port, over a fresh store.
type testServer struct {
	// URL is the server's base URL (Config.BaseURL); FHIR is the FHIR base.
	URL, FHIR string
	// Store is the store the server writes to; DBURL names its database.
	Store *fhirstore.Store
	DBURL string

	srv    *server.Server
	done   chan error
	client *http.Client
	once   sync.Once
}

// newTestServer starts a server over a fresh database of backend b; opts adjust its
// Config. The server and the store stop when the test ends.
func newTestServer(t testing.TB, b storetest.Backend, opts ...func(*server.Config)) *testServer {
	t.Helper()
	st, dbURL := storetest.Open(t, b)
	ts := startServer(t, st, opts...)
	ts.DBURL = dbURL
	return ts
}

// startServer serves st through Server.Serve on a listener bound before server.New, so
// that Config.BaseURL names the real address.
func startServer(t testing.TB, st *fhirstore.Store, opts ...func(*server.Config)) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	base := "http://" + l.Addr().String()
	cfg := server.Config{BaseURL: base, Logger: storetest.QuietLogger(), Validator: sharedValidator()}
	for _, o := range opts {
		o(&cfg)
	}
	ts := &testServer{
		URL:    base,
		FHIR:   base + "/fhir",
		Store:  st,
		srv:    server.New(st, cfg),
		done:   make(chan error, 1),
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	go func() { ts.done <- ts.srv.Serve(l) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down and waits for Serve to return.
func (ts *testServer) stop(t testing.TB) {
	ts.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Serve returned %v", err)
			}
		case <-ctx.Done():
			t.Errorf("Serve did not return after Shutdown")
		}
		ts.client.CloseIdleConnections()
	})
}

// result is an HTTP response with its body read.
type result struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends one request. path is relative to the FHIR base ("Patient/1"), or to the server
// base when it starts with "/" ("/healthz"), or absolute. body is nil, a string, []byte or
// any value encoded as JSON. hdr are header name/value pairs; Content-Type defaults to
// application/fhir+json when there is a body.
func (ts *testServer) do(t testing.TB, method, path string, body any, hdr ...string) *result {
	t.Helper()
	r, err := ts.try(method, path, body, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// try is do for goroutines other than the test's: it returns errors instead of failing.
func (ts *testServer) try(method, path string, body any, hdr ...string) (*result, error) {
	u := path
	switch {
	case strings.HasPrefix(path, "http://"):
	case strings.HasPrefix(path, "/"):
		u = ts.URL + path
	default:
		u = ts.FHIR + "/" + path
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if len(hdr)%2 != 0 {
		return nil, errors.New("odd number of header arguments")
	}
	for i := 0; i < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &result{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// json decodes the body as a JSON object, keeping numbers exact.
func (r *result) json(t testing.TB) map[string]any {
	t.Helper()
	m, err := decode(r.Body)
	if err != nil {
		t.Fatalf("response body (status %d) is not a JSON object: %v\n%s", r.Status, err, r.Body)
	}
	return m
}

// mediaType is the media type of the response, without parameters.
func (r *result) mediaType() string {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt
}

// wantStatus fails the test unless the response has the status code.
func (r *result) wantStatus(t testing.TB, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body:\n%s", r.Status, status, r.Body)
	}
}

func decode(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	return m, nil
}

// mustJSON encodes v.
func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clone deep-copies a JSON value through an encoding round trip.
func clone(t testing.TB, m map[string]any) map[string]any {
	t.Helper()
	c, err := decode(mustJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// withoutMeta returns a copy of a resource without id and meta: what a client sent and
// what the server serves back must agree on everything else.
func withoutMeta(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		if k != "id" && k != "meta" {
			c[k] = v
		}
	}
	return c
}

// nestedStatus finds an *Error formatted into another's message ("_since: 400 ...").
var nestedStatus = regexp.MustCompile(`: [45]\d\d `)

// outcomeIssue is the part of an OperationOutcome issue tests look at.
type outcomeIssue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics"`
	Expression  []string `json:"expression"`
}

// wantOutcome checks that r is an error OperationOutcome with the status, served as
// application/fhir+json, with at least one error issue; when expr is given, one error
// issue must name that element (or one inside it) in its expression. It returns the
// issues.
func (r *result) wantOutcome(t testing.TB, status int, expr string) []outcomeIssue {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body:\n%s", r.Status, status, r.Body)
	}
	if mt := r.mediaType(); mt != "application/fhir+json" {
		t.Errorf("Content-Type = %q, want application/fhir+json", r.Header.Get("Content-Type"))
	}
	var oo struct {
		ResourceType string         `json:"resourceType"`
		Issue        []outcomeIssue `json:"issue"`
	}
	if err := json.Unmarshal(r.Body, &oo); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.Body)
	}
	if oo.ResourceType != "OperationOutcome" {
		t.Fatalf("resourceType = %q, want OperationOutcome; body:\n%s", oo.ResourceType, r.Body)
	}
	var errs []outcomeIssue
	for _, is := range oo.Issue {
		if is.Severity == "error" || is.Severity == "fatal" {
			errs = append(errs, is)
		}
		if is.Code == "" || is.Severity == "" {
			t.Errorf("issue without severity or code: %+v", is)
		}
		if nestedStatus.MatchString(is.Diagnostics) {
			t.Errorf("diagnostics carry a nested status code: %q", is.Diagnostics)
		}
	}
	if len(errs) == 0 {
		t.Fatalf("OperationOutcome has no error issue:\n%s", r.Body)
	}
	names := func(is outcomeIssue) bool {
		return slices.ContainsFunc(is.Expression, func(e string) bool {
			return e == expr || strings.HasPrefix(e, expr+".") || strings.HasPrefix(e, expr+"[")
		})
	}
	if expr != "" && !slices.ContainsFunc(errs, names) {
		t.Errorf("no error issue names %q in its expression:\n%s", expr, r.Body)
	}
	return oo.Issue
}

// forBackends runs fn as a parallel subtest on every store backend (PostgreSQL skips
// with a message when VIGIL_TEST_DATABASE_URL is unset).
func forBackends(t *testing.T, fn func(t *testing.T, b storetest.Backend)) {
	t.Helper()
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// patient builds a minimal valid Patient; ident is "system|value" pairs for identifiers.
func patient(family string, ident ...string) map[string]any {
	p := map[string]any{
		"resourceType": "Patient",
		"active":       true,
		"name":         []any{map[string]any{"family": family, "given": []any{"Ada"}}},
		"birthDate":    "1970-01-02",
	}
	var ids []any
	for _, s := range ident {
		sys, val, _ := strings.Cut(s, "|")
		ids = append(ids, map[string]any{"system": sys, "value": val})
	}
	if ids != nil {
		p["identifier"] = ids
	}
	return p
}

// heartRate builds a vital-signs Observation whose value is a decimal with a trailing
// zero, so that any float round trip would show.
func heartRate(value string, subject string) map[string]any {
	o := map[string]any{
		"resourceType": "Observation",
		"status":       "final",
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}}}},
		"code": map[string]any{"coding": []any{map[string]any{
			"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}}},
		"effectiveDateTime": "2026-01-02T10:00:00Z",
		"valueQuantity": map[string]any{"value": json.Number(value), "unit": "beats/minute",
			"system": "http://unitsofmeasure.org", "code": "/min"},
	}
	if subject != "" {
		o["subject"] = map[string]any{"reference": subject}
	}
	return o
}

// create POSTs a resource and returns its id, failing unless the server answers 201.
func (ts *testServer) create(t testing.TB, res map[string]any) string {
	t.Helper()
	typ := res["resourceType"].(string)
	r := ts.do(t, http.MethodPost, typ, res)
	r.wantStatus(t, http.StatusCreated)
	id, _ := r.json(t)["id"].(string)
	if id == "" {
		t.Fatalf("created %s has no id:\n%s", typ, r.Body)
	}
	return id
}

// diff compares JSON values exactly (numbers by their text).
func diff(want, got any) string { return cmp.Diff(want, got) }

// versionOf reads meta.versionId of a served resource.
func versionOf(t testing.TB, m map[string]any) string {
	t.Helper()
	meta, _ := m["meta"].(map[string]any)
	v, _ := meta["versionId"].(string)
	if v == "" {
		t.Fatalf("resource has no meta.versionId: %v", m)
	}
	return v
}

func etag(v int) string { return fmt.Sprintf(`W/"%d"`, v) }

// jsonNumber is n as decoded with UseNumber.
func jsonNumber(n int) json.Number { return json.Number(strconv.Itoa(n)) }
