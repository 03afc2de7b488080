package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore/storetest"
	"github.com/vigil-health/vigil/server"
)

// TestCreateReadVRead covers create (201, Location, ETag, Last-Modified, the served body),
// read and vread of the created resource, and HEAD.
func TestCreateReadVRead(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		sent := heartRate("72.0", "")
		sent["id"] = "client-chosen" // create ignores a client id
		r := ts.do(t, http.MethodPost, "Observation", sent)
		r.wantStatus(t, http.StatusCreated)
		got := r.json(t)
		id, _ := got["id"].(string)
		if id == "" || id == "client-chosen" {
			t.Fatalf("created id = %q, want a server-assigned id", id)
		}
		if want := ts.FHIR + "/Observation/" + id + "/_history/1"; r.Header.Get("Location") != want {
			t.Errorf("Location = %q, want %q", r.Header.Get("Location"), want)
		}
		if r.Header.Get("ETag") != etag(1) {
			t.Errorf("ETag = %q, want %s", r.Header.Get("ETag"), etag(1))
		}
		if r.mediaType() != "application/fhir+json" {
			t.Errorf("Content-Type = %q", r.Header.Get("Content-Type"))
		}
		meta, _ := got["meta"].(map[string]any)
		lu, err := time.Parse(time.RFC3339Nano, meta["lastUpdated"].(string))
		if err != nil {
			t.Fatalf("meta.lastUpdated: %v", err)
		}
		lm, err := http.ParseTime(r.Header.Get("Last-Modified"))
		if err != nil {
			t.Fatalf("Last-Modified %q: %v", r.Header.Get("Last-Modified"), err)
		}
		if !lm.Equal(lu.Truncate(time.Second)) {
			t.Errorf("Last-Modified = %v, want meta.lastUpdated %v to the second", lm, lu)
		}
		if versionOf(t, got) != "1" {
			t.Errorf("meta.versionId = %v, want 1", meta["versionId"])
		}
		if d := diff(withoutMeta(sent), withoutMeta(got)); d != "" {
			t.Errorf("created resource differs from the one sent (-sent +served):\n%s", d)
		}

		tests := []struct {
			name, method, path string
			status             int
		}{
			{"read", http.MethodGet, "Observation/" + id, http.StatusOK},
			{"vread", http.MethodGet, "Observation/" + id + "/_history/1", http.StatusOK},
			{"head", http.MethodHead, "Observation/" + id, http.StatusOK},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := ts.do(t, tc.method, tc.path, nil)
				r.wantStatus(t, tc.status)
				if r.Header.Get("ETag") != etag(1) {
					t.Errorf("ETag = %q, want %s", r.Header.Get("ETag"), etag(1))
				}
				if r.Header.Get("Last-Modified") == "" {
					t.Errorf("no Last-Modified")
				}
				if tc.method == http.MethodHead {
					if len(r.Body) != 0 {
						t.Errorf("HEAD returned a body of %d bytes", len(r.Body))
					}
					return
				}
				if d := diff(got, r.json(t)); d != "" {
					t.Errorf("read differs from the create response (-created +read):\n%s", d)
				}
			})
		}
	})
}

// TestUpdate covers update, update-as-create, no-op updates and the update errors.
func TestUpdate(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		p := patient("Lovelace")
		p["id"] = "pat-1"

		r := ts.do(t, http.MethodPut, "Patient/pat-1", p)
		r.wantStatus(t, http.StatusCreated)
		if want := ts.FHIR + "/Patient/pat-1/_history/1"; r.Header.Get("Location") != want {
			t.Errorf("update-as-create Location = %q, want %q", r.Header.Get("Location"), want)
		}
		if got := r.json(t); got["id"] != "pat-1" || versionOf(t, got) != "1" {
			t.Errorf("update-as-create served id %v version %v, want pat-1 version 1", got["id"], versionOf(t, got))
		}

		p["gender"] = "female"
		r = ts.do(t, http.MethodPut, "Patient/pat-1", p)
		r.wantStatus(t, http.StatusOK)
		if r.Header.Get("ETag") != etag(2) {
			t.Errorf("ETag after update = %q, want %s", r.Header.Get("ETag"), etag(2))
		}
		got := r.json(t)
		if versionOf(t, got) != "2" || got["gender"] != "female" {
			t.Errorf("updated resource: version %v gender %v, want 2 female", versionOf(t, got), got["gender"])
		}

		// Sending back what was read (with its meta) changes nothing: no new version.
		r = ts.do(t, http.MethodPut, "Patient/pat-1", got)
		r.wantStatus(t, http.StatusOK)
		if r.Header.Get("ETag") != etag(2) {
			t.Errorf("ETag after an identical update = %q, want %s (no new version)", r.Header.Get("ETag"), etag(2))
		}
		r = ts.do(t, http.MethodGet, "Patient/pat-1/_history/3", nil)
		r.wantOutcome(t, http.StatusNotFound, "")

		noID := patient("Lovelace")
		otherID := patient("Lovelace")
		otherID["id"] = "pat-2"
		badID := patient("Lovelace")
		badID["id"] = "bad_id!"
		tests := []struct {
			name   string
			path   string
			body   any
			status int
			expr   string
		}{
			{"no id in body", "Patient/pat-1", noID, http.StatusBadRequest, "Patient.id"},
			{"id mismatch", "Patient/pat-1", otherID, http.StatusBadRequest, "Patient.id"},
			{"invalid id", "Patient/bad_id!", badID, http.StatusBadRequest, ""},
			{"wrong resourceType for the URL", "Observation/pat-1", p, http.StatusBadRequest, ""},
			{"no body", "Patient/pat-1", "", http.StatusBadRequest, ""},
			{"unknown type", "Patient2/pat-1", p, http.StatusNotFound, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ts.do(t, http.MethodPut, tc.path, tc.body).wantOutcome(t, tc.status, tc.expr)
			})
		}
		// None of the failed updates wrote anything.
		if r := ts.do(t, http.MethodGet, "Patient/pat-1", nil); r.Header.Get("ETag") != etag(2) {
			t.Errorf("after failed updates ETag = %q, want %s", r.Header.Get("ETag"), etag(2))
		}
	})
}

// TestDelete covers delete, reads of deleted resources (410), repeated deletes and
// bringing a deleted resource back with an update.
func TestDelete(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		id := ts.create(t, patient("Hopper"))

		r := ts.do(t, http.MethodDelete, "Patient/"+id, nil)
		if r.Status != http.StatusOK && r.Status != http.StatusNoContent {
			t.Fatalf("delete status = %d, want 200 or 204; body:\n%s", r.Status, r.Body)
		}
		if r.Header.Get("ETag") != etag(2) {
			t.Errorf("delete ETag = %q, want %s (the deletion is version 2)", r.Header.Get("ETag"), etag(2))
		}

		tests := []struct {
			name, method, path string
			status             int
		}{
			{"read after delete", http.MethodGet, "Patient/" + id, http.StatusGone},
			{"vread of the deletion", http.MethodGet, "Patient/" + id + "/_history/2", http.StatusGone},
			{"vread before the deletion", http.MethodGet, "Patient/" + id + "/_history/1", http.StatusOK},
			{"delete again", http.MethodDelete, "Patient/" + id, http.StatusNoContent},
			{"delete unknown id", http.MethodDelete, "Patient/never-existed", http.StatusNoContent},
			{"read unknown id", http.MethodGet, "Patient/never-existed", http.StatusNotFound},
			{"vread unknown version", http.MethodGet, "Patient/" + id + "/_history/9", http.StatusNotFound},
			{"vread bad version", http.MethodGet, "Patient/" + id + "/_history/x", http.StatusNotFound},
			{"read unknown type", http.MethodGet, "Nonsense/" + id, http.StatusNotFound},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := ts.do(t, tc.method, tc.path, nil)
				if tc.status >= 400 {
					r.wantOutcome(t, tc.status, "")
					return
				}
				r.wantStatus(t, tc.status)
			})
		}

		// A deleted resource comes back with an update, as version 3.
		p := patient("Hopper")
		p["id"] = id
		r = ts.do(t, http.MethodPut, "Patient/"+id, p)
		r.wantStatus(t, http.StatusCreated)
		if r.Header.Get("ETag") != etag(3) {
			t.Errorf("ETag after resurrection = %q, want %s", r.Header.Get("ETag"), etag(3))
		}
		ts.do(t, http.MethodGet, "Patient/"+id, nil).wantStatus(t, http.StatusOK)
	})
}

// TestContentNegotiation covers the accepted media types, _format, _pretty, and the 406
// and 415 answers.
func TestContentNegotiation(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		id := ts.create(t, patient("Turing"))
		path := "Patient/" + id
		tests := []struct {
			name     string
			path     string
			accept   string
			status   int
			wantType string
		}{
			{"no Accept", path, "", http.StatusOK, "application/fhir+json"},
			{"fhir+json", path, "application/fhir+json", http.StatusOK, "application/fhir+json"},
			{"json", path, "application/json", http.StatusOK, "application/json"},
			{"wildcard", path, "*/*", http.StatusOK, "application/fhir+json"},
			{"browser", path, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", http.StatusOK, "application/fhir+json"},
			{"fhir+json with fhirVersion", path, "application/fhir+json; fhirVersion=4.0", http.StatusOK, "application/fhir+json"},
			{"_format=json", path + "?_format=json", "", http.StatusOK, "application/fhir+json"},
			{"_format=application/fhir+json", path + "?_format=application/fhir%2Bjson", "", http.StatusOK, "application/fhir+json"},
			{"_format overrides Accept", path + "?_format=json", "application/fhir+xml", http.StatusOK, "application/fhir+json"},
			{"xml Accept", path, "application/fhir+xml", http.StatusNotAcceptable, ""},
			{"_format=xml", path + "?_format=xml", "", http.StatusNotAcceptable, ""},
			{"turtle", path, "text/turtle", http.StatusNotAcceptable, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var hdr []string
				if tc.accept != "" {
					hdr = []string{"Accept", tc.accept}
				}
				r := ts.do(t, http.MethodGet, tc.path, nil, hdr...)
				if tc.status != http.StatusOK {
					r.wantOutcome(t, tc.status, "")
					return
				}
				r.wantStatus(t, tc.status)
				if r.mediaType() != tc.wantType {
					t.Errorf("Content-Type = %q, want %s", r.Header.Get("Content-Type"), tc.wantType)
				}
				if r.json(t)["id"] != id {
					t.Errorf("served another resource:\n%s", r.Body)
				}
			})
		}

		t.Run("_pretty", func(t *testing.T) {
			plain := ts.do(t, http.MethodGet, path, nil)
			pretty := ts.do(t, http.MethodGet, path+"?_pretty=true", nil)
			pretty.wantStatus(t, http.StatusOK)
			if !strings.Contains(string(pretty.Body), "\n  \"") {
				t.Errorf("_pretty=true body is not indented:\n%s", pretty.Body)
			}
			if strings.Contains(string(plain.Body), "\n") {
				t.Errorf("body without _pretty is indented")
			}
			if d := diff(plain.json(t), pretty.json(t)); d != "" {
				t.Errorf("_pretty changed the content:\n%s", d)
			}
		})

		bodies := []struct {
			name, contentType string
			status            int
		}{
			{"fhir+json", "application/fhir+json", http.StatusCreated},
			{"fhir+json with charset", "application/fhir+json; charset=utf-8", http.StatusCreated},
			{"json", "application/json", http.StatusCreated},
			{"xml", "application/fhir+xml", http.StatusUnsupportedMediaType},
			{"text", "text/plain", http.StatusUnsupportedMediaType},
			{"form", "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
			{"malformed", "application/", http.StatusUnsupportedMediaType},
		}
		for _, tc := range bodies {
			t.Run("Content-Type "+tc.name, func(t *testing.T) {
				r := ts.do(t, http.MethodPost, "Patient", patient("Turing"), "Content-Type", tc.contentType)
				if tc.status != http.StatusCreated {
					r.wantOutcome(t, tc.status, "")
					return
				}
				r.wantStatus(t, tc.status)
			})
		}
	})
}

// TestPrefer covers Prefer: return=minimal, representation and OperationOutcome on create,
// update and patch.
func TestPrefer(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		tests := []struct {
			name, prefer string
			// wantType is the resourceType of the body; empty for no body.
			wantType string
		}{
			{"default", "", "Patient"},
			{"representation", "return=representation", "Patient"},
			{"minimal", "return=minimal", ""},
			{"OperationOutcome", "return=OperationOutcome", "OperationOutcome"},
			{"with other preferences", "handling=strict, return=minimal", ""},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var hdr []string
				if tc.prefer != "" {
					hdr = []string{"Prefer", tc.prefer}
				}
				check := func(t *testing.T, r *result, status int, version int) {
					t.Helper()
					r.wantStatus(t, status)
					if r.Header.Get("ETag") != etag(version) {
						t.Errorf("ETag = %q, want %s", r.Header.Get("ETag"), etag(version))
					}
					if r.Header.Get("Last-Modified") == "" {
						t.Errorf("no Last-Modified")
					}
					if tc.wantType == "" {
						if len(r.Body) != 0 {
							t.Errorf("return=minimal sent a body:\n%s", r.Body)
						}
						return
					}
					if got := r.json(t)["resourceType"]; got != tc.wantType {
						t.Errorf("body resourceType = %v, want %s", got, tc.wantType)
					}
				}
				r := ts.do(t, http.MethodPost, "Patient", patient("Prefer"), hdr...)
				check(t, r, http.StatusCreated, 1)
				loc := r.Header.Get("Location")
				if !strings.HasPrefix(loc, ts.FHIR+"/Patient/") {
					t.Fatalf("Location = %q", loc)
				}
				id := strings.Split(strings.TrimPrefix(loc, ts.FHIR+"/Patient/"), "/")[0]
				p := patient("Prefer")
				p["id"] = id
				p["gender"] = []string{"male", "female", "other", "unknown", "male"}[i]
				check(t, ts.do(t, http.MethodPut, "Patient/"+id, p, hdr...), http.StatusOK, 2)
				patch := `[{"op":"replace","path":"/active","value":false}]`
				check(t, ts.do(t, http.MethodPatch, "Patient/"+id, patch, append(hdr, "Content-Type", "application/json-patch+json")...), http.StatusOK, 3)
			})
		}
	})
}

// TestErrorStatuses covers the error answers that do not belong to one interaction: each
// must be an OperationOutcome with the right status.
func TestErrorStatuses(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b, func(c *server.Config) { c.MaxBodyBytes = 4096 })
		id := ts.create(t, patient("Errors"))
		big := patient("Errors")
		big["text"] = map[string]any{"status": "generated", "div": `<div xmlns="http://www.w3.org/1999/xhtml">` + strings.Repeat("x", 5000) + `</div>`}
		invalid := patient("Errors")
		invalid["gender"] = "sometimes"
		unknownField := patient("Errors")
		unknownField["favouriteColour"] = "blue"
		tests := []struct {
			name, method, path string
			body               any
			status             int
			expr               string
		}{
			{"bad JSON", http.MethodPost, "Patient", `{"resourceType":"Patient",`, http.StatusBadRequest, ""},
			{"not an object", http.MethodPost, "Patient", `[1,2]`, http.StatusBadRequest, ""},
			{"invalid code", http.MethodPost, "Patient", invalid, http.StatusBadRequest, "Patient.gender"},
			{"unknown element", http.MethodPost, "Patient", unknownField, http.StatusBadRequest, ""},
			{"empty body", http.MethodPost, "Patient", "", http.StatusBadRequest, ""},
			{"wrong resourceType for the URL", http.MethodPost, "Observation", patient("Errors"), http.StatusBadRequest, ""},
			{"unknown resource type", http.MethodGet, "Widget/1", nil, http.StatusNotFound, ""},
			{"unknown resource type create", http.MethodPost, "Widget", patient("Errors"), http.StatusNotFound, ""},
			{"unknown endpoint", http.MethodGet, "Patient/" + id + "/x/y/z", nil, http.StatusNotFound, ""},
			{"not a FHIR path", http.MethodGet, "/nowhere", nil, http.StatusNotFound, ""},
			{"POST on an instance", http.MethodPost, "Patient/" + id, patient("Errors"), http.StatusMethodNotAllowed, ""},
			{"DELETE metadata", http.MethodDelete, "metadata", nil, http.StatusMethodNotAllowed, ""},
			{"PUT history", http.MethodPut, "Patient/" + id + "/_history", patient("Errors"), http.StatusMethodNotAllowed, ""},
			{"POST vread", http.MethodPost, "Patient/" + id + "/_history/1", patient("Errors"), http.StatusMethodNotAllowed, ""},
			{"body over the limit", http.MethodPost, "Patient", big, http.StatusRequestEntityTooLarge, ""},
			{"unknown operation", http.MethodPost, "Patient/$everything-else", nil, http.StatusNotFound, ""},
			{"malformed query string", http.MethodGet, "Patient/" + id + "?a=%zz", nil, http.StatusBadRequest, ""},
			{"unknown method", "PROPFIND", "Patient/" + id, nil, http.StatusMethodNotAllowed, ""},
			{"unknown method outside FHIR", "PROPFIND", "/healthz", nil, http.StatusMethodNotAllowed, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ts.do(t, tc.method, tc.path, tc.body).wantOutcome(t, tc.status, tc.expr)
			})
		}

		t.Run("chunked body over the limit", func(t *testing.T) {
			// No Content-Length: the limit must hold while reading.
			pr, pw := io.Pipe()
			go func() {
				pw.Write(mustJSON(t, big))
				pw.Close()
			}()
			req, _ := http.NewRequest(http.MethodPost, ts.FHIR+"/Patient", pr)
			req.Header.Set("Content-Type", "application/fhir+json")
			resp, err := ts.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			(&result{Status: resp.StatusCode, Header: resp.Header, Body: body}).wantOutcome(t, http.StatusRequestEntityTooLarge, "")
		})
	})
}
