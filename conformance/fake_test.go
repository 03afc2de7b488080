package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeFHIR is a small in-memory FHIR server for engine tests: create, read, vread, update,
// delete, history, metadata, transaction/batch echo, and a canned answer for everything
// else. It records every request it receives.
type fakeFHIR struct {
	mu       sync.Mutex
	base     string
	next     int
	versions map[string][]map[string]any // "Type/id" -> versions (nil entry = deletion)
	requests []recorded
	// canned, when set for "METHOD path", answers that request instead.
	canned map[string]cannedResponse
}

type recorded struct {
	Method, URI string
	Header      http.Header
	Body        string
}

type cannedResponse struct {
	status int
	header map[string]string
	body   string
}

// newFake starts a fake FHIR server on 127.0.0.1 and returns it with its FHIR base URL.
func newFake(t testing.TB) (*fakeFHIR, string) {
	t.Helper()
	f := &fakeFHIR{versions: map[string][]map[string]any{}, canned: map[string]cannedResponse{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(f)
	ts.Listener.Close()
	ts.Listener = l
	ts.Start()
	t.Cleanup(ts.Close)
	f.base = ts.URL + "/fhir"
	return f, f.base
}

func (f *fakeFHIR) can(method, path string, status int, body string, header map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.canned[method+" "+path] = cannedResponse{status: status, header: header, body: body}
}

func (f *fakeFHIR) last() recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		return recorded{}
	}
	return f.requests[len(f.requests)-1]
}

func (f *fakeFHIR) all() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.requests...)
}

func (f *fakeFHIR) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, recorded{Method: r.Method, URI: r.URL.RequestURI(), Header: r.Header.Clone(), Body: string(body)})
	if c, ok := f.canned[r.Method+" "+r.URL.Path]; ok {
		for k, v := range c.header {
			w.Header().Set(k, v)
		}
		if c.body != "" && w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/fhir+json")
		}
		w.WriteHeader(c.status)
		io.WriteString(w, c.body)
		return
	}
	path := strings.Trim(strings.TrimPrefix(r.URL.Path, "/fhir"), "/")
	var segs []string
	if path != "" {
		segs = strings.Split(path, "/")
	}
	reply := func(status int, v any, hdr ...string) {
		w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.WriteHeader(status)
		if v != nil {
			json.NewEncoder(w).Encode(v)
		}
	}
	outcome := func(status int, msg string) {
		reply(status, map[string]any{"resourceType": "OperationOutcome", "issue": []any{map[string]any{"severity": "error", "code": "processing", "diagnostics": msg}}})
	}
	write := func(typ, id string, res map[string]any, status int) {
		key := typ + "/" + id
		v := len(f.versions[key]) + 1
		res["id"] = id
		res["meta"] = map[string]any{"versionId": strconv.Itoa(v), "lastUpdated": "2026-01-02T03:04:05Z"}
		f.versions[key] = append(f.versions[key], res)
		reply(status, res, "ETag", fmt.Sprintf(`W/"%d"`, v), "Location", fmt.Sprintf("%s/%s/_history/%d", f.base, key, v))
	}
	switch {
	case len(segs) == 0 && r.Method == http.MethodPost:
		var b map[string]any
		if json.Unmarshal(body, &b) != nil {
			outcome(400, "bad bundle")
			return
		}
		reply(200, map[string]any{"resourceType": "Bundle", "type": fmt.Sprint(b["type"]) + "-response"})
	case len(segs) == 1 && segs[0] == "metadata" && r.Method == http.MethodGet:
		reply(200, map[string]any{"resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1", "date": "2026-01-01", "format": []any{"json"}})
	case len(segs) == 1 && r.Method == http.MethodPost:
		var res map[string]any
		if json.Unmarshal(body, &res) != nil || res["resourceType"] != segs[0] {
			outcome(400, "bad resource")
			return
		}
		f.next++
		write(segs[0], fmt.Sprintf("%s-%d", strings.ToLower(segs[0]), f.next), res, 201)
	case len(segs) == 2 && !strings.HasPrefix(segs[1], "$") && !strings.HasPrefix(segs[1], "_"):
		key := segs[0] + "/" + segs[1]
		vs := f.versions[key]
		switch r.Method {
		case http.MethodGet:
			switch {
			case len(vs) == 0:
				outcome(404, "not found")
			case vs[len(vs)-1] == nil:
				outcome(410, "gone")
			default:
				reply(200, vs[len(vs)-1], "ETag", fmt.Sprintf(`W/"%d"`, len(vs)))
			}
		case http.MethodPut:
			var res map[string]any
			if json.Unmarshal(body, &res) != nil || res["id"] != segs[1] {
				outcome(400, "bad resource or id")
				return
			}
			status := 200
			if len(vs) == 0 {
				status = 201
			}
			write(segs[0], segs[1], res, status)
		case http.MethodDelete:
			if len(vs) > 0 {
				f.versions[key] = append(vs, nil)
			}
			w.WriteHeader(204)
		default:
			outcome(405, "not allowed")
		}
	case len(segs) == 4 && segs[2] == "_history" && r.Method == http.MethodGet:
		vs := f.versions[segs[0]+"/"+segs[1]]
		v, err := strconv.Atoi(segs[3])
		if err != nil || v < 1 || v > len(vs) {
			outcome(404, "no such version")
			return
		}
		if vs[v-1] == nil {
			outcome(410, "deleted version")
			return
		}
		reply(200, vs[v-1], "ETag", fmt.Sprintf(`W/"%d"`, v))
	default:
		// Anything else (search, history, $operations, conditional interactions) gets an
		// OperationOutcome naming the request, so tests can check what was sent.
		reply(200, map[string]any{"resourceType": "OperationOutcome", "issue": []any{map[string]any{
			"severity": "information", "code": "informational", "diagnostics": r.Method + " " + r.URL.RequestURI()}}})
	}
}

// ts builds a TestScript JSON from parts given as Go values.
func ts(t testing.TB, parts map[string]any) []byte {
	t.Helper()
	s := map[string]any{"resourceType": "TestScript", "id": "unit", "name": "Unit", "status": "active", "url": "urn:unit"}
	for k, v := range parts {
		s[k] = v
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// opJ is an operation action; kv are its fields.
func opJ(code string, kv ...any) map[string]any {
	o := map[string]any{}
	if code != "" {
		o["type"] = map[string]any{"system": "http://terminology.hl7.org/CodeSystem/testscript-operation-codes", "code": code}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		o[kv[i].(string)] = kv[i+1]
	}
	return map[string]any{"operation": o}
}

// asJ is an assert action; kv are its fields.
func asJ(kv ...any) map[string]any {
	a := map[string]any{"warningOnly": false}
	for i := 0; i+1 < len(kv); i += 2 {
		a[kv[i].(string)] = kv[i+1]
	}
	return map[string]any{"assert": a}
}

func actions(as ...map[string]any) map[string]any { return map[string]any{"action": as} }

func testJ(name string, as ...map[string]any) map[string]any {
	return map[string]any{"name": name, "action": as}
}

// runJ runs a script against base and fails the test on a script error.
func runJ(t testing.TB, base string, script []byte) *Result {
	t.Helper()
	r := &Runner{Base: base}
	res, err := r.RunScript(context.Background(), script, "")
	if err != nil {
		t.Fatalf("RunScript: %v", err)
	}
	return res
}

// summary renders a result for failure messages.
func summary(res *Result) string {
	var b strings.Builder
	res.WriteSummary(&b)
	return b.String()
}
