package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore/storetest"
)

const mrn = "http://hospital.example/mrn"

// TestConditionalCreate covers If-None-Exist: no match creates, one match answers 200 with
// the existing resource and creates nothing, several matches answer 412, and conditions
// the server cannot evaluate are refused.
func TestConditionalCreate(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		first := ts.do(t, http.MethodPost, "Patient", patient("Curie", mrn+"|1"), "If-None-Exist", "identifier="+url.QueryEscape(mrn+"|1"))
		first.wantStatus(t, http.StatusCreated)
		id := first.json(t)["id"].(string)
		ts.create(t, patient("Dup", mrn+"|dup"))
		ts.create(t, patient("Dup", mrn+"|dup"))

		tests := []struct {
			name, condition string
			status          int
			// wantID is the id of the resource served back for a 200.
			wantID string
		}{
			{"one match by system|value", "identifier=" + url.QueryEscape(mrn+"|1"), http.StatusOK, id},
			{"one match by value", "identifier=1", http.StatusOK, id},
			{"one match with leading ?", "?identifier=" + url.QueryEscape(mrn+"|1"), http.StatusOK, id},
			{"one match by _id", "_id=" + id, http.StatusOK, id},
			{"no match", "identifier=" + url.QueryEscape(mrn+"|2"), http.StatusCreated, ""},
			{"several matches", "identifier=" + url.QueryEscape(mrn+"|dup"), http.StatusPreconditionFailed, ""},
			{"unknown parameter", "not-a-param=1", http.StatusBadRequest, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := ts.do(t, http.MethodPost, "Patient", patient("Curie", mrn+"|2"), "If-None-Exist", tc.condition)
				switch tc.status {
				case http.StatusOK:
					r.wantStatus(t, http.StatusOK)
					got := r.json(t)
					if got["id"] != tc.wantID || versionOf(t, got) != "1" {
						t.Errorf("served %v version %v, want the existing %s version 1", got["id"], versionOf(t, got), tc.wantID)
					}
					if r.Header.Get("ETag") != etag(1) {
						t.Errorf("ETag = %q, want %s", r.Header.Get("ETag"), etag(1))
					}
				case http.StatusCreated:
					r.wantStatus(t, http.StatusCreated)
					if r.json(t)["id"] == id {
						t.Errorf("created over the existing resource")
					}
				default:
					r.wantOutcome(t, tc.status, "")
				}
			})
		}
		// The matched resource was never touched.
		r := ts.do(t, http.MethodGet, "Patient/"+id+"/_history", nil)
		r.wantStatus(t, http.StatusOK)
		if total := r.json(t)["total"]; total != jsonNumber(1) {
			t.Errorf("history total of the matched resource = %v, want 1", total)
		}
	})
}

// TestConditionalUpdate covers PUT [type]?[search]: no match creates (with the body's id
// when it has one), one match updates, a different id or several matches are refused.
func TestConditionalUpdate(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		id := ts.create(t, patient("Noether", mrn+"|10"))
		ts.create(t, patient("Dup", mrn+"|dup"))
		ts.create(t, patient("Dup", mrn+"|dup"))
		q := func(v string) string { return "Patient?identifier=" + url.QueryEscape(mrn+"|"+v) }

		t.Run("one match updates it", func(t *testing.T) {
			p := patient("Noether", mrn+"|10")
			p["gender"] = "female"
			r := ts.do(t, http.MethodPut, q("10"), p)
			r.wantStatus(t, http.StatusOK)
			got := r.json(t)
			if got["id"] != id || versionOf(t, got) != "2" || got["gender"] != "female" {
				t.Errorf("served %v version %v gender %v, want %s version 2 female", got["id"], versionOf(t, got), got["gender"], id)
			}
		})
		t.Run("one match with its own id", func(t *testing.T) {
			p := patient("Noether", mrn+"|10")
			p["id"] = id
			p["gender"] = "other"
			ts.do(t, http.MethodPut, q("10"), p).wantStatus(t, http.StatusOK)
		})
		t.Run("no match and no id creates", func(t *testing.T) {
			r := ts.do(t, http.MethodPut, q("11"), patient("New", mrn+"|11"))
			r.wantStatus(t, http.StatusCreated)
			if loc := r.Header.Get("Location"); !strings.HasSuffix(loc, "/_history/1") {
				t.Errorf("Location = %q, want a version URL", loc)
			}
		})
		t.Run("no match with an id creates that id", func(t *testing.T) {
			p := patient("New", mrn+"|12")
			p["id"] = "chosen-12"
			r := ts.do(t, http.MethodPut, q("12"), p)
			r.wantStatus(t, http.StatusCreated)
			if got := r.json(t)["id"]; got != "chosen-12" {
				t.Errorf("id = %v, want chosen-12", got)
			}
		})
		errs := []struct {
			name, path string
			id         string
			status     int
			expr       string
		}{
			{"one match with another id", q("10"), "someone-else", http.StatusBadRequest, "Patient.id"},
			{"several matches", q("dup"), "", http.StatusPreconditionFailed, ""},
			{"no condition", "Patient", "", http.StatusBadRequest, ""},
			{"only result parameters", "Patient?_count=1", "", http.StatusBadRequest, ""},
			{"unknown parameter", "Patient?not-a-param=1", "", http.StatusBadRequest, ""},
		}
		for _, tc := range errs {
			t.Run(tc.name, func(t *testing.T) {
				p := patient("X", mrn+"|10")
				if tc.id != "" {
					p["id"] = tc.id
				}
				ts.do(t, http.MethodPut, tc.path, p).wantOutcome(t, tc.status, tc.expr)
			})
		}
	})
}

// TestConditionalDelete covers DELETE [type]?[search] with no, one and several matches.
func TestConditionalDelete(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		one := ts.create(t, patient("One", mrn+"|d1"))
		dupA := ts.create(t, patient("Dup", mrn+"|ddup"))
		dupB := ts.create(t, patient("Dup", mrn+"|ddup"))
		keep := ts.create(t, patient("Keep", mrn+"|keep"))
		q := func(v string) string { return "Patient?identifier=" + url.QueryEscape(mrn+"|"+v) }

		tests := []struct {
			name, path string
			status     int
			gone       []string
		}{
			{"one match", q("d1"), http.StatusOK, []string{one}},
			{"no match", q("nothing"), http.StatusOK, nil},
			{"several matches delete them all", q("ddup"), http.StatusOK, []string{dupA, dupB}},
			{"by _id", "Patient?_id=" + keep, http.StatusOK, []string{keep}},
			{"no condition", "Patient", http.StatusBadRequest, nil},
			{"unknown parameter", "Patient?not-a-param=1", http.StatusBadRequest, nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := ts.do(t, http.MethodDelete, tc.path, nil)
				if tc.status >= 400 {
					r.wantOutcome(t, tc.status, "")
					return
				}
				if r.Status != http.StatusOK && r.Status != http.StatusNoContent {
					t.Fatalf("status = %d, want 200 or 204:\n%s", r.Status, r.Body)
				}
				for _, id := range tc.gone {
					ts.do(t, http.MethodGet, "Patient/"+id, nil).wantOutcome(t, http.StatusGone, "")
				}
			})
		}
	})
}

// TestVersionPreconditions covers If-Match on update, patch and delete (412 on a stale
// version), If-None-Match and If-Modified-Since on read (304).
func TestVersionPreconditions(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		p := patient("Meitner")
		id := ts.create(t, p)
		p["id"] = id
		jsonPatch := func(v bool) string {
			if v {
				return `[{"op":"replace","path":"/active","value":true}]`
			}
			return `[{"op":"replace","path":"/active","value":false}]`
		}
		step := 0
		nextBody := func() map[string]any {
			step++ // every body differs, so that every accepted update makes a version
			c := clone(t, p)
			c["multipleBirthInteger"] = step
			return c
		}
		writes := []struct {
			name, method, ifMatch string
			body                  func() any
			status                int
		}{
			{"update with the current version", http.MethodPut, etag(1), func() any { return nextBody() }, http.StatusOK},
			{"update with a stale version", http.MethodPut, etag(1), func() any { return nextBody() }, http.StatusPreconditionFailed},
			{"update with a strong ETag", http.MethodPut, `"2"`, func() any { return nextBody() }, http.StatusOK},
			{"update with a future version", http.MethodPut, etag(9), func() any { return nextBody() }, http.StatusPreconditionFailed},
			{"update with a malformed ETag", http.MethodPut, `W/"two"`, func() any { return nextBody() }, http.StatusBadRequest},
			{"patch with the current version", http.MethodPatch, etag(3), func() any { return jsonPatch(false) }, http.StatusOK},
			{"patch with a stale version", http.MethodPatch, etag(3), func() any { return jsonPatch(true) }, http.StatusPreconditionFailed},
			{"delete with a stale version", http.MethodDelete, etag(3), func() any { return nil }, http.StatusPreconditionFailed},
		}
		for _, tc := range writes {
			t.Run(tc.name, func(t *testing.T) {
				hdr := []string{"If-Match", tc.ifMatch}
				if tc.method == http.MethodPatch {
					hdr = append(hdr, "Content-Type", "application/json-patch+json")
				}
				r := ts.do(t, tc.method, "Patient/"+id, tc.body(), hdr...)
				if tc.status >= 400 {
					r.wantOutcome(t, tc.status, "")
					return
				}
				r.wantStatus(t, tc.status)
			})
		}
		// Four writes succeeded or failed as expected: version 4 is current, nothing else.
		r := ts.do(t, http.MethodGet, "Patient/"+id, nil)
		if r.Header.Get("ETag") != etag(4) {
			t.Fatalf("ETag after the conditional writes = %q, want %s", r.Header.Get("ETag"), etag(4))
		}
		lastModified := r.Header.Get("Last-Modified")
		lm, err := http.ParseTime(lastModified)
		if err != nil {
			t.Fatal(err)
		}

		reads := []struct {
			name   string
			hdr    []string
			status int
		}{
			{"If-None-Match current", []string{"If-None-Match", etag(4)}, http.StatusNotModified},
			{"If-None-Match one of several", []string{"If-None-Match", `W/"1", W/"4"`}, http.StatusNotModified},
			{"If-None-Match star", []string{"If-None-Match", "*"}, http.StatusNotModified},
			{"If-None-Match old", []string{"If-None-Match", etag(3)}, http.StatusOK},
			{"If-Modified-Since Last-Modified", []string{"If-Modified-Since", lastModified}, http.StatusNotModified},
			{"If-Modified-Since later", []string{"If-Modified-Since", lm.Add(time.Hour).Format(http.TimeFormat)}, http.StatusNotModified},
			{"If-Modified-Since earlier", []string{"If-Modified-Since", lm.Add(-time.Hour).Format(http.TimeFormat)}, http.StatusOK},
			{"If-None-Match wins over If-Modified-Since", []string{"If-None-Match", etag(3), "If-Modified-Since", lastModified}, http.StatusOK},
		}
		for _, tc := range reads {
			t.Run(tc.name, func(t *testing.T) {
				r := ts.do(t, http.MethodGet, "Patient/"+id, nil, tc.hdr...)
				r.wantStatus(t, tc.status)
				if r.Header.Get("ETag") != etag(4) {
					t.Errorf("ETag = %q, want %s", r.Header.Get("ETag"), etag(4))
				}
				if tc.status == http.StatusNotModified && len(r.Body) != 0 {
					t.Errorf("304 with a body:\n%s", r.Body)
				}
				if tc.status == http.StatusOK && r.json(t)["id"] != id {
					t.Errorf("200 without the resource:\n%s", r.Body)
				}
			})
		}

		t.Run("delete with the current version", func(t *testing.T) {
			r := ts.do(t, http.MethodDelete, "Patient/"+id, nil, "If-Match", etag(4))
			if r.Status != http.StatusOK && r.Status != http.StatusNoContent {
				t.Fatalf("status = %d:\n%s", r.Status, r.Body)
			}
			ts.do(t, http.MethodGet, "Patient/"+id, nil).wantOutcome(t, http.StatusGone, "")
		})
		t.Run("update of a missing resource with If-Match", func(t *testing.T) {
			q := patient("Nobody")
			q["id"] = "missing-1"
			ts.do(t, http.MethodPut, "Patient/missing-1", q, "If-Match", etag(1)).wantOutcome(t, http.StatusPreconditionFailed, "")
			ts.do(t, http.MethodGet, "Patient/missing-1", nil).wantOutcome(t, http.StatusNotFound, "")
		})
		t.Run("delete of a missing resource with If-Match", func(t *testing.T) {
			ts.do(t, http.MethodDelete, "Patient/missing-2", nil, "If-Match", etag(1)).wantOutcome(t, http.StatusPreconditionFailed, "")
		})
	})
}

// TestConditionalPatch covers PATCH [type]?[search].
func TestConditionalPatch(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		id := ts.create(t, patient("Franklin", mrn+"|p1"))
		ts.create(t, patient("Dup", mrn+"|pdup"))
		ts.create(t, patient("Dup", mrn+"|pdup"))
		patch := `[{"op":"add","path":"/gender","value":"female"}]`
		q := func(v string) string { return "Patient?identifier=" + url.QueryEscape(mrn+"|"+v) }
		tests := []struct {
			name, path string
			status     int
		}{
			{"one match", q("p1"), http.StatusOK},
			{"no match", q("none"), http.StatusNotFound},
			{"several matches", q("pdup"), http.StatusPreconditionFailed},
			{"no condition", "Patient", http.StatusBadRequest},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := ts.do(t, http.MethodPatch, tc.path, patch, "Content-Type", "application/json-patch+json")
				if tc.status >= 400 {
					r.wantOutcome(t, tc.status, "")
					return
				}
				r.wantStatus(t, tc.status)
				if got := r.json(t); got["id"] != id || got["gender"] != "female" {
					t.Errorf("patched %v gender %v, want %s female", got["id"], got["gender"], id)
				}
			})
		}
	})
}
