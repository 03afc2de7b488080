package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
)

// search serves type-level search (GET [type]?..., POST [type]/_search).
func (s *Server) search(ctx context.Context, req *request, typ string) (*response, error) {
	return s.runSearch(ctx, req, fhirstore.SearchRequest{Type: typ}, s.FHIRBase()+"/"+typ)
}

// searchSystem serves GET [base]?_type=...
func (s *Server) searchSystem(ctx context.Context, req *request) (*response, error) {
	return s.runSearch(ctx, req, fhirstore.SearchRequest{}, s.FHIRBase())
}

// searchCompartment serves GET [base]/Patient/123/Observation?...
func (s *Server) searchCompartment(ctx context.Context, req *request, ctype, cid, typ string) (*response, error) {
	return s.runSearch(ctx, req, fhirstore.SearchRequest{Type: typ, Compartment: &fhirstore.CompartmentRef{Type: ctype, ID: cid}},
		s.FHIRBase()+"/"+ctype+"/"+cid+"/"+typ)
}

func (s *Server) runSearch(ctx context.Context, req *request, sr fhirstore.SearchRequest, selfBase string) (*response, error) {
	params := url.Values{}
	for k, vs := range req.query {
		switch k {
		case "_format", "_pretty":
			continue
		case "_page":
			sr.Cursor = req.query.Get("_page")
			continue
		}
		params[k] = vs
	}
	fixDateOffsets(params)
	sr.Params = params
	sr.Lenient = lenient(req)
	sr.BaseURL = s.FHIRBase()
	res, err := s.store.Search(ctx, sr)
	if err != nil {
		return nil, searchError(err)
	}
	return s.searchBundle(req, res, selfBase), nil
}

// searchError maps a search failure to an OperationOutcome error.
func searchError(err error) error {
	var se *fhirstore.SearchError
	if errors.As(err, &se) {
		code := "invalid"
		if se.Unsupported {
			code = "not-supported"
		}
		fe := errorf(http.StatusBadRequest, code, "%s", strings.TrimPrefix(se.Error(), "fhirstore: "))
		if se.Param != "" {
			fe.withExpr(se.Param)
		}
		return fe
	}
	return asError(err)
}

// searchBundle renders a search result as a searchset Bundle.
func (s *Server) searchBundle(req *request, res *fhirstore.SearchResult, selfBase string) *response {
	b := bundleJSON{ResourceType: "Bundle", ID: fhirstore.NewID(), Type: "searchset", Total: res.Total,
		Meta: &bundleMeta{LastUpdated: fhirstore.FormatInstant(time.Now())}}
	self := selfBase + encodeQuery(res.SelfParams, "")
	b.Link = append(b.Link, bundleLink{"self", self})
	if res.Next != "" {
		b.Link = append(b.Link, bundleLink{"next", selfBase + encodeQuery(res.SelfParams, res.Next)})
	}
	if res.Summary != "count" {
		for _, r := range res.Matches {
			b.Entry = append(b.Entry, bundleEntry{FullURL: s.FHIRBase() + "/" + r.Type + "/" + r.ID,
				Resource: subset(r, res.Summary, res.Elements), Search: &entrySearch{Mode: "match"}})
		}
		for _, r := range res.Included {
			b.Entry = append(b.Entry, bundleEntry{FullURL: s.FHIRBase() + "/" + r.Type + "/" + r.ID,
				Resource: subset(r, res.Summary, res.Elements), Search: &entrySearch{Mode: "include"}})
		}
	}
	if len(res.Issues) > 0 {
		var issues []outcomeIssue
		for _, is := range res.Issues {
			issues = append(issues, outcomeIssue{Severity: "warning", Code: "not-supported",
				Diagnostics: "parameter ignored: " + is.Msg, Expression: []string{is.Param}})
		}
		oo, _ := json.Marshal(outcome{ResourceType: "OperationOutcome", Issue: issues})
		b.Entry = append(b.Entry, bundleEntry{Resource: oo, Search: &entrySearch{Mode: "outcome"}})
	}
	body, _ := json.Marshal(b)
	return &response{status: http.StatusOK, body: body}
}

// subset applies _summary and _elements to a stored resource. Subsetted resources are
// tagged SUBSETTED, as the spec asks.
func subset(r *fhirstore.Resource, summary string, elements []string) json.RawMessage {
	if (summary == "" || summary == "false") && len(elements) == 0 {
		return r.Body
	}
	m, err := decodeJSON(r.Body)
	if err != nil {
		return r.Body
	}
	keep := map[string]bool{"resourceType": true, "id": true, "meta": true}
	switch summary {
	case "true":
		for _, e := range summaryElements[r.Type] {
			keep[e] = true
		}
	case "text":
		keep["text"] = true
		for _, e := range summaryElements[r.Type] {
			if e == "status" {
				keep[e] = true
			}
		}
	case "data":
		for k := range m {
			keep[k] = k != "text"
		}
		keep["resourceType"], keep["id"], keep["meta"] = true, true, true
	}
	for _, e := range elements {
		keep[e] = true
	}
	for k := range m {
		if keep[k] {
			continue
		}
		// Choice elements are named without [x] in the summary table.
		if base := choiceBase(k); base != "" && keep[base] {
			continue
		}
		delete(m, k)
	}
	meta, _ := m["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	tags, _ := meta["tag"].([]any)
	meta["tag"] = append(tags, map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"})
	m["meta"] = meta
	b, err := fhirstore.EncodeResource(m)
	if err != nil {
		return r.Body
	}
	return b
}

// choiceBase returns "value" for "valueQuantity" (a choice element), "" otherwise.
func choiceBase(k string) string {
	for i := 1; i < len(k); i++ {
		if k[i] >= 'A' && k[i] <= 'Z' {
			return k[:i]
		}
	}
	return ""
}

// lastN serves Observation/$lastn: the newest max Observations per code for a patient.
func (s *Server) lastN(ctx context.Context, req *request) (*response, error) {
	patient := req.query.Get("patient")
	if patient == "" {
		patient = req.query.Get("subject")
	}
	patient = strings.TrimPrefix(patient, "Patient/")
	if patient == "" {
		return nil, errorf(http.StatusBadRequest, "required", "$lastn needs patient (or subject)").withExpr("patient")
	}
	max := 1
	if v := req.query.Get("max"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, errorf(http.StatusBadRequest, "invalid", "max must be a positive integer").withExpr("max")
		}
		max = n
	}
	var codes []string
	for _, v := range req.query["code"] {
		codes = append(codes, splitComma(v)...)
	}
	for k := range req.query {
		switch k {
		case "patient", "subject", "max", "code", "_format", "_pretty", "category":
		default:
			if !lenient(req) {
				return nil, errorf(http.StatusBadRequest, "not-supported", "parameter %q is not supported by $lastn (use patient, code, max, category)", k).withExpr(k)
			}
		}
	}
	rs, err := s.store.LastN(ctx, patient, codes, max)
	if err != nil {
		return nil, searchError(err)
	}
	if cat := req.query.Get("category"); cat != "" {
		rs = filterCategory(rs, cat)
	}
	total := len(rs)
	return s.searchBundle(req, &fhirstore.SearchResult{Matches: rs, Total: &total, SelfParams: req.query},
		s.FHIRBase()+"/Observation/$lastn"), nil
}

// filterCategory keeps Observations with a category code equal to cat ("code" or
// "system|code").
func filterCategory(rs []*fhirstore.Resource, cat string) []*fhirstore.Resource {
	var out []*fhirstore.Resource
	for _, r := range rs {
		if hasCategory(r, cat) {
			out = append(out, r)
		}
	}
	return out
}

func hasCategory(r *fhirstore.Resource, cat string) bool {
	sys, code, hasSys := strings.Cut(cat, "|")
	if !hasSys {
		code = cat
	}
	var o struct {
		Category []struct {
			Coding []struct{ System, Code string }
		}
	}
	if json.Unmarshal(r.Body, &o) != nil {
		return false
	}
	for _, c := range o.Category {
		for _, cd := range c.Coding {
			if cd.Code == code && (!hasSys || cd.System == sys) {
				return true
			}
		}
	}
	return false
}

func splitComma(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// everything serves Patient/[id]/$everything with _since, _type, _count and paging.
func (s *Server) everything(ctx context.Context, req *request, id string) (*response, error) {
	var since time.Time
	if v := req.query.Get("_since"); v != "" {
		t, err := parseInstant(v)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "invalid", "_since: %v", err).withExpr("_since")
		}
		since = t
	}
	var types []string
	for _, v := range req.query["_type"] {
		for _, t := range splitComma(v) {
			if !s.types[t] {
				return nil, errorf(http.StatusBadRequest, "invalid", "_type %q is not a resource type", t).withExpr("_type")
			}
			types = append(types, t)
		}
	}
	count := 0
	if v := req.query.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, errorf(http.StatusBadRequest, "invalid", "_count must be a positive integer").withExpr("_count")
		}
		count = n
	}
	res, err := s.store.Everything(ctx, id, since, types, count, req.query.Get("_page"))
	if err != nil {
		if errors.Is(err, fhirstore.ErrNotFound) || errors.Is(err, fhirstore.ErrGone) {
			return nil, errorf(http.StatusNotFound, "not-found", "Patient/%s is not known", id)
		}
		return nil, searchError(err)
	}
	params := url.Values{}
	for k, vs := range req.query {
		if k != "_page" {
			params[k] = vs
		}
	}
	res.SelfParams = params
	return s.searchBundle(req, res, s.FHIRBase()+"/Patient/"+id+"/$everything"), nil
}

// unescapedOffset matches a dateTime search value whose "+hh:mm" offset arrived as
// " hh:mm" because the client did not percent-encode the plus sign.
var unescapedOffset = regexp.MustCompile(`^((?:eq|ne|gt|lt|ge|le|sa|eb|ap)?\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:\d{2})$`)

// fixDateOffsets restores the plus sign of such offsets (a date never contains a space),
// as HAPI does, instead of refusing a search clients commonly send.
func fixDateOffsets(q url.Values) {
	for k, vs := range q {
		for i, v := range vs {
			if strings.Contains(v, " ") {
				parts := strings.Split(v, ",")
				for j, p := range parts {
					parts[j] = unescapedOffset.ReplaceAllString(p, "$1+$2")
				}
				q[k][i] = strings.Join(parts, ",")
			}
		}
	}
}
