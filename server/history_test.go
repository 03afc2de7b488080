package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore/storetest"
)

// historyBundle is the part of a history Bundle the tests look at.
type historyBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        *int   `json:"total"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"request"`
		Response struct {
			Status       string `json:"status"`
			Etag         string `json:"etag"`
			LastModified string `json:"lastModified"`
		} `json:"response"`
	} `json:"entry"`
}

func (r *result) history(t testing.TB) *historyBundle {
	t.Helper()
	r.wantStatus(t, http.StatusOK)
	var hb historyBundle
	if err := json.Unmarshal(r.Body, &hb); err != nil {
		t.Fatalf("history is not JSON: %v\n%s", err, r.Body)
	}
	if hb.ResourceType != "Bundle" || hb.Type != "history" || hb.Total == nil {
		t.Fatalf("not a history Bundle with a total:\n%s", r.Body)
	}
	return &hb
}

func (hb *historyBundle) link(rel string) string {
	for _, l := range hb.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

// etags lists the entries as "id@etag" in order.
func (hb *historyBundle) etags() []string {
	var out []string
	for _, e := range hb.Entry {
		out = append(out, e.FullURL+"@"+e.Response.Etag)
	}
	return out
}

// TestHistory covers instance, type and system history: entries newest first with their
// request and response, deletions without a resource, _count paging through next links,
// _since and _at, and the errors.
func TestHistory(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		// Versions a few milliseconds apart, so that _since and _at can tell them apart.
		pause := func() { time.Sleep(4 * time.Millisecond) }
		p := patient("Franklin")
		id := ts.create(t, p)
		p["id"] = id
		var lastUpdated []string // of versions 1..4
		read := func() {
			m := ts.do(t, http.MethodGet, "Patient/"+id+"/_history/"+jsonNumber(len(lastUpdated)+1).String(), nil).json(t)
			lastUpdated = append(lastUpdated, m["meta"].(map[string]any)["lastUpdated"].(string))
		}
		read()
		pause()
		p["gender"] = "female"
		ts.do(t, http.MethodPut, "Patient/"+id, p).wantStatus(t, http.StatusOK)
		read()
		pause()
		ts.do(t, http.MethodPatch, "Patient/"+id, `[{"op":"replace","path":"/active","value":false}]`, "Content-Type", "application/json-patch+json").wantStatus(t, http.StatusOK)
		read()
		pause()
		obsID := ts.create(t, heartRate("61", "Patient/"+id))
		pause()
		ts.do(t, http.MethodDelete, "Patient/"+id, nil).wantStatus(t, http.StatusNoContent)
		patientURL := ts.FHIR + "/Patient/" + id
		obsURL := ts.FHIR + "/Observation/" + obsID

		t.Run("instance", func(t *testing.T) {
			hb := ts.do(t, http.MethodGet, "Patient/"+id+"/_history", nil).history(t)
			if *hb.Total != 4 || len(hb.Entry) != 4 {
				t.Fatalf("total %d with %d entries, want 4", *hb.Total, len(hb.Entry))
			}
			type row struct{ Method, URL, Status, Etag string }
			var got []row
			for _, e := range hb.Entry {
				got = append(got, row{e.Request.Method, e.Request.URL, e.Response.Status, e.Response.Etag})
				if e.FullURL != patientURL {
					t.Errorf("fullUrl = %q, want %q", e.FullURL, patientURL)
				}
				if (e.Request.Method == http.MethodDelete) != (len(e.Resource) == 0) {
					t.Errorf("%s entry: resource present = %v; only deletions have none", e.Request.Method, len(e.Resource) != 0)
				}
			}
			want := []row{
				{"DELETE", "Patient/" + id, "204 No Content", etag(4)},
				{"PATCH", "Patient/" + id, "200 OK", etag(3)},
				{"PUT", "Patient/" + id, "200 OK", etag(2)},
				{"POST", "Patient", "201 Created", etag(1)},
			}
			if d := diff(want, got); d != "" {
				t.Errorf("entries (-want +got):\n%s", d)
			}
			if self := hb.link("self"); self != patientURL+"/_history" {
				t.Errorf("self link = %q", self)
			}
		})

		t.Run("paging with _count", func(t *testing.T) {
			var seen []string
			next := "Patient/" + id + "/_history?_count=3"
			for pages := 0; next != ""; pages++ {
				if pages > 3 {
					t.Fatalf("more pages than versions")
				}
				hb := ts.do(t, http.MethodGet, next, nil).history(t)
				if *hb.Total != 4 {
					t.Errorf("total on page %d = %d, want 4", pages, *hb.Total)
				}
				if len(hb.Entry) > 3 {
					t.Errorf("page %d has %d entries, _count is 3", pages, len(hb.Entry))
				}
				seen = append(seen, hb.etags()...)
				next = hb.link("next")
			}
			var want []string
			for v := 4; v >= 1; v-- {
				want = append(want, patientURL+"@"+etag(v))
			}
			if d := diff(want, seen); d != "" {
				t.Errorf("versions over all pages (-want +got):\n%s", d)
			}
		})

		tests := []struct {
			name, path string
			want       []string
			total      int
		}{
			{"type", "Patient/_history", []string{patientURL + "@" + etag(4), patientURL + "@" + etag(3), patientURL + "@" + etag(2), patientURL + "@" + etag(1)}, 4},
			{"other type", "Observation/_history", []string{obsURL + "@" + etag(1)}, 1},
			{"system", "_history", []string{patientURL + "@" + etag(4), obsURL + "@" + etag(1), patientURL + "@" + etag(3), patientURL + "@" + etag(2), patientURL + "@" + etag(1)}, 5},
			{"_since the second version", "Patient/" + id + "/_history?_since=" + url.QueryEscape(lastUpdated[1]), []string{patientURL + "@" + etag(4), patientURL + "@" + etag(3), patientURL + "@" + etag(2)}, 3},
			{"_since in the future", "_history?_since=2999-01-01T00:00:00Z", nil, 0},
			{"_since with an unescaped + offset", "_history?_since=2999-01-01T02:00:00+02:00", nil, 0},
			{"_since with an escaped + offset", "_history?_since=2000-01-01T02:00:00%2B02:00", []string{patientURL + "@" + etag(4), obsURL + "@" + etag(1), patientURL + "@" + etag(3), patientURL + "@" + etag(2), patientURL + "@" + etag(1)}, 5},
			{"_at the second version", "Patient/" + id + "/_history?_at=" + url.QueryEscape(lastUpdated[1]), []string{patientURL + "@" + etag(2)}, 1},
			{"_at before anything", "_history?_at=2000-01-01", nil, 0},
			{"_count=0 gives the total only", "_history?_count=0", nil, 5},
			{"history of a deleted resource", "Patient/" + id + "/_history?_count=1", []string{patientURL + "@" + etag(4)}, 4},
			{"lenient ignores unknown parameters", "_history?_count=1&_foo=bar", []string{patientURL + "@" + etag(4)}, 5},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var hdr []string
				if tc.name == "lenient ignores unknown parameters" {
					hdr = []string{"Prefer", "handling=lenient"}
				}
				hb := ts.do(t, http.MethodGet, tc.path, nil, hdr...).history(t)
				if *hb.Total != tc.total {
					t.Errorf("total = %d, want %d", *hb.Total, tc.total)
				}
				if d := diff(tc.want, hb.etags()); d != "" {
					t.Errorf("entries (-want +got):\n%s", d)
				}
			})
		}

		errs := []struct {
			name, path string
			status     int
		}{
			{"unknown id", "Patient/never/_history", http.StatusNotFound},
			{"unknown type", "Nope/_history", http.StatusNotFound},
			{"bad _count", "_history?_count=many", http.StatusBadRequest},
			{"negative _count", "_history?_count=-1", http.StatusBadRequest},
			{"bad _since", "_history?_since=yesterday", http.StatusBadRequest},
			{"bad _at", "Patient/_history?_at=soon", http.StatusBadRequest},
			{"bad _page", "_history?_page=abc", http.StatusBadRequest},
			{"unknown parameter", "_history?_foo=bar", http.StatusBadRequest},
			{"POST", "_history", http.StatusMethodNotAllowed},
		}
		for _, tc := range errs {
			t.Run(tc.name, func(t *testing.T) {
				method := http.MethodGet
				var body any
				if tc.name == "POST" {
					method, body = http.MethodPost, patient("X")
				}
				for _, is := range ts.do(t, method, tc.path, body).wantOutcome(t, tc.status, "") {
					if strings.Contains(is.Diagnostics, ": 400 ") {
						t.Errorf("diagnostics carry a nested status code: %q", is.Diagnostics)
					}
				}
			})
		}
	})
}
