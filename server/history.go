package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
)

// bundleJSON is the shape of the Bundles the server builds.
type bundleJSON struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id,omitempty"`
	Meta         *bundleMeta   `json:"meta,omitempty"`
	Type         string        `json:"type"`
	Timestamp    string        `json:"timestamp,omitempty"`
	Total        *int          `json:"total,omitempty"`
	Link         []bundleLink  `json:"link,omitempty"`
	Entry        []bundleEntry `json:"entry,omitempty"`
}

type bundleMeta struct {
	LastUpdated string `json:"lastUpdated,omitempty"`
}

type bundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *entrySearch    `json:"search,omitempty"`
	Request  *entryRequest   `json:"request,omitempty"`
	Response *entryResponse  `json:"response,omitempty"`
}

type entrySearch struct {
	Mode  string   `json:"mode,omitempty"`
	Score *float64 `json:"score,omitempty"`
}

type entryRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type entryResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

// history serves instance (typ and id), type (typ) and system history.
func (s *Server) history(ctx context.Context, req *request, typ, id string) (*response, error) {
	q := fhirstore.HistoryQuery{Type: typ, ID: id}
	for k := range req.query {
		switch k {
		case "_count", "_since", "_at", "_page", "_format", "_pretty":
		default:
			if !lenient(req) {
				return nil, errorf(http.StatusBadRequest, "not-supported", "parameter %q is not supported by history (use _count, _since, _at)", k)
			}
		}
	}
	if v := req.query.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, errorf(http.StatusBadRequest, "invalid", "_count must be a non-negative integer, got %q", v).withExpr("_count")
		}
		q.Count = n
		if n == 0 {
			q.Count = 1 // _count=0 asks only for the total
		}
	}
	if v := req.query.Get("_since"); v != "" {
		t, err := parseInstant(v)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "invalid", "_since: %v", err).withExpr("_since")
		}
		q.Since = t
	}
	if v := req.query.Get("_at"); v != "" {
		t, err := parseInstant(v)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "invalid", "_at: %v", err).withExpr("_at")
		}
		q.At = t
	}
	if v := req.query.Get("_page"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return nil, errorf(http.StatusBadRequest, "invalid", "malformed _page cursor %q", v)
		}
		q.Before = n
	}
	if id != "" {
		// History of an id never seen is a 404, not an empty Bundle.
		if _, err := s.store.Read(ctx, typ, id); err != nil && !isGone(err) {
			return nil, errorf(http.StatusNotFound, "not-found", "%s/%s is not known", typ, id)
		}
	}
	page, err := s.store.History(ctx, q)
	if err != nil {
		return nil, asError(err)
	}
	total := page.Total
	b := bundleJSON{ResourceType: "Bundle", ID: fhirstore.NewID(), Type: "history", Total: &total,
		Meta: &bundleMeta{LastUpdated: fhirstore.FormatInstant(time.Now())}}
	self := s.FHIRBase()
	if typ != "" {
		self += "/" + typ
	}
	if id != "" {
		self += "/" + id
	}
	self += "/_history"
	b.Link = append(b.Link, bundleLink{"self", self + encodeQuery(req.query, "")})
	if page.Next > 0 && req.query.Get("_count") != "0" {
		b.Link = append(b.Link, bundleLink{"next", self + encodeQuery(req.query, strconv.FormatInt(page.Next, 10))})
	}
	if req.query.Get("_count") != "0" {
		for _, r := range page.Entries {
			b.Entry = append(b.Entry, s.historyEntry(r))
		}
	}
	body, _ := json.Marshal(b)
	return &response{status: http.StatusOK, body: body}, nil
}

func (s *Server) historyEntry(r *fhirstore.Resource) bundleEntry {
	e := bundleEntry{FullURL: s.FHIRBase() + "/" + r.Type + "/" + r.ID}
	req := &entryRequest{Method: r.Method, URL: r.Type + "/" + r.ID}
	status := "200 OK"
	switch r.Method {
	case "POST":
		req.URL = r.Type
		status = "201 Created"
	case "DELETE":
		status = "204 No Content"
	}
	if r.Method == "" {
		req.Method = "PUT"
	}
	if !r.Deleted {
		e.Resource = r.Body
	}
	e.Request = req
	e.Response = &entryResponse{Status: status, Etag: r.ETag(), LastModified: fhirstore.FormatInstant(r.LastUpdated)}
	return e
}

// encodeQuery re-encodes q for a paging link with _page set to page (or removed).
func encodeQuery(q url.Values, page string) string {
	c := url.Values{}
	for k, vs := range q {
		if k == "_page" {
			continue
		}
		c[k] = vs
	}
	if page != "" {
		c.Set("_page", page)
	}
	if len(c) == 0 {
		return ""
	}
	return "?" + c.Encode()
}

func lenient(req *request) bool {
	for _, v := range req.header.Values("Prefer") {
		if containsToken(v, "handling=lenient") {
			return true
		}
	}
	return false
}

func containsToken(header, token string) bool {
	for _, p := range strings.FieldsFunc(header, func(r rune) bool { return r == ',' || r == ';' }) {
		if strings.TrimSpace(p) == token {
			return true
		}
	}
	return false
}

// parseInstant reads a FHIR instant or dateTime/date (the start of its range).
func parseInstant(v string) (time.Time, error) {
	if strings.Contains(v, "T") {
		// A +hh:mm offset sent unescaped in a query string arrives as " hh:mm".
		v = strings.Replace(v, " ", "+", 1)
	}
	layouts := []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02", "2006-01", "2006"}
	for _, l := range layouts {
		if t, err := time.Parse(l, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a FHIR instant (e.g. 2026-01-02T10:00:00Z)", v)
}

func isGone(err error) bool { return asError(err).Status == http.StatusGone }
