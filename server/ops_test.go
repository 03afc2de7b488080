package server_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-health/vigil/fhirstore/storetest"
	"github.com/vigil-health/vigil/server"
)

// TestMetadata covers GET [base]/metadata: a CapabilityStatement for FHIR 4.0.1 that names
// this server and the interactions it serves.
func TestMetadata(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		for _, path := range []string{"metadata", "metadata?mode=full", "metadata?_format=json"} {
			t.Run(path, func(t *testing.T) {
				r := ts.do(t, http.MethodGet, path, nil)
				r.wantStatus(t, http.StatusOK)
				if r.mediaType() != "application/fhir+json" {
					t.Errorf("Content-Type = %q", r.Header.Get("Content-Type"))
				}
				var cs struct {
					ResourceType   string   `json:"resourceType"`
					FHIRVersion    string   `json:"fhirVersion"`
					Kind           string   `json:"kind"`
					Status         string   `json:"status"`
					Format         []string `json:"format"`
					Implementation struct {
						URL string `json:"url"`
					} `json:"implementation"`
					Rest []struct {
						Mode     string `json:"mode"`
						Resource []struct {
							Type        string `json:"type"`
							Interaction []struct {
								Code string `json:"code"`
							} `json:"interaction"`
						} `json:"resource"`
						Interaction []struct {
							Code string `json:"code"`
						} `json:"interaction"`
					} `json:"rest"`
				}
				if err := json.Unmarshal(r.Body, &cs); err != nil {
					t.Fatal(err)
				}
				if cs.ResourceType != "CapabilityStatement" || cs.FHIRVersion != "4.0.1" || cs.Kind != "instance" || cs.Status == "" {
					t.Errorf("resourceType %q fhirVersion %q kind %q status %q", cs.ResourceType, cs.FHIRVersion, cs.Kind, cs.Status)
				}
				if cs.Implementation.URL != ts.FHIR {
					t.Errorf("implementation.url = %q, want %q", cs.Implementation.URL, ts.FHIR)
				}
				if !slices.Contains(cs.Format, "application/fhir+json") && !slices.Contains(cs.Format, "json") {
					t.Errorf("format %v does not list JSON", cs.Format)
				}
				if len(cs.Rest) != 1 || cs.Rest[0].Mode != "server" {
					t.Fatalf("rest = %+v, want one server entry", cs.Rest)
				}
				var sys []string
				for _, in := range cs.Rest[0].Interaction {
					sys = append(sys, in.Code)
				}
				for _, want := range []string{"transaction", "batch", "history-system"} {
					if !slices.Contains(sys, want) {
						t.Errorf("system interactions %v lack %s", sys, want)
					}
				}
				found := false
				for _, res := range cs.Rest[0].Resource {
					if res.Type != "Observation" {
						continue
					}
					found = true
					var codes []string
					for _, in := range res.Interaction {
						codes = append(codes, in.Code)
					}
					for _, want := range []string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create"} {
						if !slices.Contains(codes, want) {
							t.Errorf("Observation interactions %v lack %s", codes, want)
						}
					}
				}
				if !found {
					t.Errorf("no Observation in rest.resource")
				}
			})
		}
		ts.do(t, http.MethodPost, "metadata", patient("X")).wantOutcome(t, http.StatusMethodNotAllowed, "")
	})
}

// TestValidateOperation covers $validate at type and instance level: 200 with an
// OperationOutcome that names the offending element, and nothing stored.
func TestValidateOperation(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		id := ts.create(t, patient("Valid"))
		invalid := patient("Invalid")
		invalid["gender"] = "sometimes"
		mine := patient("Mine")
		mine["id"] = "someone-else"
		params := func(res map[string]any, mode string) map[string]any {
			ps := []any{map[string]any{"name": "resource", "resource": res}}
			if mode != "" {
				ps = append(ps, map[string]any{"name": "mode", "valueCode": mode})
			}
			return map[string]any{"resourceType": "Parameters", "parameter": ps}
		}
		tests := []struct {
			name, method, path string
			body               any
			// wantExpr is the element an error must name; empty means no errors.
			wantExpr string
		}{
			{"type level valid", http.MethodPost, "Patient/$validate", patient("Fine"), ""},
			{"type level invalid", http.MethodPost, "Patient/$validate", invalid, "Patient.gender"},
			{"type level in Parameters", http.MethodPost, "Patient/$validate", params(invalid, ""), "Patient.gender"},
			{"type level wrong type", http.MethodPost, "Observation/$validate", patient("Fine"), "Patient"},
			{"instance level stored", http.MethodGet, "Patient/" + id + "/$validate", nil, ""},
			{"instance level given", http.MethodPost, "Patient/" + id + "/$validate", invalid, "Patient.gender"},
			{"instance level update with another id", http.MethodPost, "Patient/" + id + "/$validate?mode=update", mine, "Patient.id"},
			{"instance level delete", http.MethodPost, "Patient/" + id + "/$validate", params(patient("Fine"), "delete"), ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := ts.do(t, tc.method, tc.path, tc.body)
				r.wantStatus(t, http.StatusOK)
				var oo struct {
					ResourceType string         `json:"resourceType"`
					Issue        []outcomeIssue `json:"issue"`
				}
				if err := json.Unmarshal(r.Body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
					t.Fatalf("not an OperationOutcome with issues:\n%s", r.Body)
				}
				var named bool
				var errs int
				for _, is := range oo.Issue {
					if is.Severity == "error" || is.Severity == "fatal" {
						errs++
						named = named || slices.Contains(is.Expression, tc.wantExpr)
					}
				}
				if tc.wantExpr == "" && errs > 0 {
					t.Errorf("errors for a valid resource:\n%s", r.Body)
				}
				if tc.wantExpr != "" && !named {
					t.Errorf("no error names %s:\n%s", tc.wantExpr, r.Body)
				}
			})
		}
		errs := []struct {
			name, method, path string
			body               any
			status             int
		}{
			{"no resource", http.MethodPost, "Patient/$validate", nil, http.StatusBadRequest},
			{"bad JSON", http.MethodPost, "Patient/$validate", `{"resourceType":`, http.StatusBadRequest},
			{"unknown instance", http.MethodGet, "Patient/nobody/$validate", nil, http.StatusNotFound},
			{"delete mode on an unknown instance", http.MethodPost, "Patient/nobody/$validate?mode=delete", patient("X"), http.StatusNotFound},
			{"DELETE", http.MethodDelete, "Patient/$validate", nil, http.StatusMethodNotAllowed},
		}
		for _, tc := range errs {
			t.Run(tc.name, func(t *testing.T) {
				ts.do(t, tc.method, tc.path, tc.body).wantOutcome(t, tc.status, "")
			})
		}
		// $validate stored nothing: only the one Patient created above exists.
		if n := ts.typeTotal(t, "Patient"); n != 1 {
			t.Errorf("Patient versions = %d, want 1", n)
		}
	})
}

// TestOperational covers /healthz, /readyz and /metrics.
func TestOperational(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		r := ts.do(t, http.MethodGet, "/healthz", nil)
		r.wantStatus(t, http.StatusOK)
		if r.json(t)["status"] != "ok" {
			t.Errorf("/healthz: %s", r.Body)
		}
		r = ts.do(t, http.MethodGet, "/readyz", nil)
		r.wantStatus(t, http.StatusOK)
		if got := r.json(t); got["status"] != "ready" || got["backend"] != b.Name {
			t.Errorf("/readyz: %s", r.Body)
		}

		id := ts.create(t, patient("Metrics"))
		ts.do(t, http.MethodGet, "Patient/"+id, nil).wantStatus(t, http.StatusOK)
		ts.do(t, http.MethodGet, "Patient/nobody", nil).wantStatus(t, http.StatusNotFound)
		r = ts.do(t, http.MethodGet, "/metrics", nil)
		r.wantStatus(t, http.StatusOK)
		body := string(r.Body)
		for _, want := range []string{
			`vigil_http_requests_total{code="201",interaction="create"} 1`,
			`vigil_http_requests_total{code="200",interaction="read"} 1`,
			`vigil_http_requests_total{code="404",interaction="read"} 1`,
			`vigil_http_request_duration_seconds_bucket{interaction="read"`,
			"go_goroutines",
			`go_sql_max_open_connections{db_name="vigil"}`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if strings.Contains(body, id) {
			t.Errorf("/metrics exposes a resource id")
		}

		// Once the database is gone the server is alive but not ready.
		ts.Store.Close()
		ts.do(t, http.MethodGet, "/healthz", nil).wantStatus(t, http.StatusOK)
		r = ts.do(t, http.MethodGet, "/readyz", nil)
		r.wantStatus(t, http.StatusServiceUnavailable)
	})
}

// syncBuffer is a bytes.Buffer safe for the server's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsHoldNoPHI sends requests full of patient data (names, identifiers, ids that are
// MRNs) including ones that fail, and checks that the request logs hold none of it.
func TestLogsHoldNoPHI(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		var logs syncBuffer
		ts := newTestServer(t, b, func(c *server.Config) {
			c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		})
		const name, mrnValue, clientID = "Zyxwvutsrq", "MRN-84721", "mrn-84721"
		p := patient(name, mrn+"|"+mrnValue)
		p["id"] = clientID
		bad := patient(name)
		bad["gender"] = name
		cond := "identifier=" + url.QueryEscape(mrn+"|"+mrnValue)
		ts.do(t, http.MethodPut, "Patient/"+clientID, p).wantStatus(t, http.StatusCreated)
		ts.do(t, http.MethodGet, "Patient/"+clientID, nil).wantStatus(t, http.StatusOK)
		ts.do(t, http.MethodPost, "Patient", patient(name, mrn+"|"+mrnValue), "If-None-Exist", cond).wantStatus(t, http.StatusOK)
		ts.do(t, http.MethodPost, "Patient", bad).wantOutcome(t, http.StatusBadRequest, "")
		ts.do(t, http.MethodGet, "Patient?"+cond, nil)
		ts.do(t, http.MethodPost, "", bundleOf("transaction", txEntry("", "PUT", "Patient/"+clientID, bad))).wantOutcome(t, http.StatusBadRequest, "")
		ts.do(t, http.MethodGet, "Patient/"+clientID+"/_history", nil).wantStatus(t, http.StatusOK)
		// Failures inside the server (the database is gone) are logged with their cause.
		ts.Store.Close()
		r := ts.do(t, http.MethodGet, "Patient/"+clientID, nil)
		r.wantOutcome(t, http.StatusInternalServerError, "")
		ts.do(t, http.MethodPut, "Patient/"+clientID, p).wantOutcome(t, http.StatusInternalServerError, "")
		if strings.Contains(string(r.Body), "sql") {
			t.Errorf("a 500 tells the client internal detail: %s", r.Body)
		}

		out := logs.String()
		if !strings.Contains(out, `"status":500`) || !strings.Contains(out, `"interaction":"read"`) {
			t.Errorf("the request log lacks the requests:\n%s", out)
		}
		for _, phi := range []string{name, mrnValue, clientID, "84721"} {
			if strings.Contains(out, phi) {
				t.Errorf("the logs hold %q:\n%s", phi, out)
			}
		}
	})
}
