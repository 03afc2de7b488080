package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil/fhirpath"
	"github.com/vigil-health/vigil/fhirstore"
)

// entry is one parsed entry of a transaction or batch Bundle.
type entry struct {
	index    int
	fullURL  string
	method   string
	typ, id  string     // from request.url; id empty for type-level URLs
	vid      int64      // a _history/n URL (GET)
	query    url.Values // conditional URL parameters
	resource map[string]any
	rawURL   string
	header   http.Header

	// target is the resolved identity ("Type/id") of a write, set before processing.
	target string
	// noop marks a conditional create that matched an existing resource.
	noop *fhirstore.Resource
	// err is a batch entry that could not be parsed; it is answered with this error.
	err *Error
	// op is set for an operation URL ([type]/$op, [type]/[id]/$op): such an entry is
	// run through the dispatcher, not as a write, and its resource is the operation's
	// input (a Parameters or the resource to work on).
	op bool
}

// bundle serves POST [base] with a transaction or batch Bundle.
func (s *Server) bundle(ctx context.Context, req *request) (*response, error) {
	b, fe := s.parseResource(req.body, "Bundle")
	var entryErrs map[int]*Error
	if fe != nil {
		// In a batch, an invalid entry fails alone; only a broken envelope fails all.
		if b, entryErrs = s.batchEntryErrors(req.body, fe); b == nil {
			return nil, fe
		}
	}
	typ, _ := b["type"].(string)
	if typ != "transaction" && typ != "batch" {
		return nil, errorf(http.StatusBadRequest, "invalid", "POST to the FHIR base takes a Bundle of type transaction or batch, not %q", typ).withExpr("Bundle.type")
	}
	raw, _ := b["entry"].([]any)
	entries := make([]*entry, 0, len(raw))
	for i, r := range raw {
		if ee := entryErrs[i]; ee != nil {
			entries = append(entries, &entry{index: i, err: ee})
			continue
		}
		e, fe := s.parseEntry(i, r)
		if fe != nil {
			if typ == "batch" {
				entries = append(entries, &entry{index: i, err: fe})
				continue
			}
			return nil, fe
		}
		entries = append(entries, e)
	}
	if typ == "batch" {
		return s.batch(ctx, req, entries)
	}
	return s.transaction(ctx, req, entries)
}

var entryExpr = regexp.MustCompile(`^Bundle\.entry\[(\d+)\]`)

// batchEntryErrors splits the validation errors of a batch Bundle by entry. When every
// error lies within an entry (Bundle.entry[i]...), it returns the decoded Bundle and a 400
// per failing entry; otherwise (not a batch, not JSON, an error in the envelope) nil.
func (s *Server) batchEntryErrors(body []byte, fe *Error) (map[string]any, map[int]*Error) {
	if fe.Status != http.StatusBadRequest {
		return nil, nil
	}
	b, err := decodeJSON(body)
	if err != nil || b["type"] != "batch" {
		return nil, nil
	}
	errs := map[int]*Error{}
	for _, is := range fe.Issues {
		idx := -1
		for _, ex := range is.Expression {
			if m := entryExpr.FindStringSubmatch(ex); m != nil {
				idx, _ = strconv.Atoi(m[1])
				break
			}
		}
		if idx < 0 {
			if is.Severity == "error" || is.Severity == "fatal" {
				return nil, nil
			}
			continue
		}
		if errs[idx] == nil {
			errs[idx] = &Error{Status: http.StatusBadRequest}
		}
		errs[idx].Issues = append(errs[idx].Issues, is)
	}
	return b, errs
}

func (s *Server) parseEntry(i int, raw any) (*entry, *Error) {
	where := fmt.Sprintf("Bundle.entry[%d]", i)
	m, _ := raw.(map[string]any)
	r, _ := m["request"].(map[string]any)
	if r == nil {
		return nil, errorf(http.StatusBadRequest, "required", "entry %d has no request", i).withExpr(where + ".request")
	}
	e := &entry{index: i, header: http.Header{}}
	e.fullURL, _ = m["fullUrl"].(string)
	e.method, _ = r["method"].(string)
	e.rawURL, _ = r["url"].(string)
	e.resource, _ = m["resource"].(map[string]any)
	for field, h := range map[string]string{"ifNoneExist": "If-None-Exist", "ifMatch": "If-Match", "ifNoneMatch": "If-None-Match", "ifModifiedSince": "If-Modified-Since"} {
		if v, ok := r[field].(string); ok && v != "" {
			e.header.Set(h, v)
		}
	}
	u := strings.TrimPrefix(e.rawURL, s.FHIRBase()+"/")
	path, rawQuery, _ := strings.Cut(u, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid", "entry %d: malformed query in request.url", i).withExpr(where + ".request.url")
	}
	e.query = q
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) == 0 || segs[0] == "" {
		return nil, errorf(http.StatusBadRequest, "invalid", "entry %d: request.url %q names no resource type", i, e.rawURL).withExpr(where + ".request.url")
	}
	e.typ = segs[0]
	e.op = strings.HasPrefix(segs[len(segs)-1], "$")
	if !s.types[e.typ] {
		return nil, errorf(http.StatusNotFound, "not-supported", "entry %d: unknown resource type %q", i, e.typ).withExpr(where + ".request.url")
	}
	if len(segs) > 1 {
		e.id = segs[1]
	}
	if len(segs) == 4 && segs[2] == "_history" {
		v, err := strconv.ParseInt(segs[3], 10, 64)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "invalid", "entry %d: bad version in %q", i, e.rawURL).withExpr(where + ".request.url")
		}
		e.vid = v
	} else if len(segs) > 2 && e.method != http.MethodGet && !e.op {
		return nil, errorf(http.StatusBadRequest, "invalid", "entry %d: request.url %q is not a resource URL", i, e.rawURL).withExpr(where + ".request.url")
	}
	if (e.method == http.MethodPost || e.method == http.MethodPut) && e.resource == nil {
		return nil, errorf(http.StatusBadRequest, "required", "entry %d: %s needs a resource", i, e.method).withExpr(where + ".resource")
	}
	if e.resource != nil && !e.op && (e.method == http.MethodPost || e.method == http.MethodPut) {
		if rt, _ := e.resource["resourceType"].(string); rt != e.typ {
			return nil, errorf(http.StatusBadRequest, "invalid", "entry %d: resource type %s does not match request.url %q", i, rt, e.rawURL).withExpr(where + ".resource")
		}
	}
	return e, nil
}

// transactionOrder is the processing order the spec sets: DELETE, POST, PUT/PATCH, GET/HEAD.
func transactionOrder(method string) int {
	switch method {
	case http.MethodDelete:
		return 0
	case http.MethodPost:
		return 1
	case http.MethodPut, http.MethodPatch:
		return 2
	}
	return 3
}

func (s *Server) transaction(ctx context.Context, req *request, entries []*entry) (*response, error) {
	ordered := append([]*entry(nil), entries...)
	sort.SliceStable(ordered, func(a, b int) bool {
		return transactionOrder(ordered[a].method) < transactionOrder(ordered[b].method)
	})
	results := make([]bundleEntry, len(entries))
	var gets []*entry
	err := s.store.InTx(ctx, func(tx *fhirstore.Tx) error {
		// The function may run again after a serialization failure: start clean.
		for _, e := range entries {
			e.target, e.noop = "", nil
		}
		gets = gets[:0]
		if err := s.resolveIdentities(ctx, tx, entries); err != nil {
			return err
		}
		for _, e := range ordered {
			// Reads and operations (only $validate, which writes nothing) run after the
			// writes committed, so they see them.
			if e.method == http.MethodGet || e.method == http.MethodHead || e.op {
				gets = append(gets, e)
				continue
			}
			resp, err := s.transactionEntry(ctx, tx, e)
			if err != nil {
				fe := asError(err)
				for i := range fe.Issues {
					fe.Issues[i].Diagnostics = fmt.Sprintf("transaction failed at entry %d (%s %s): %s", e.index, e.method, e.rawURL, fe.Issues[i].Diagnostics)
					if len(fe.Issues[i].Expression) == 0 {
						fe.Issues[i].Expression = []string{fmt.Sprintf("Bundle.entry[%d]", e.index)}
					}
				}
				return fe
			}
			results[e.index] = s.entryResult(req, resp)
		}
		return nil
	})
	if err != nil {
		return nil, asError(err)
	}
	// Reads run after the writes committed, so they see them.
	for _, e := range gets {
		results[e.index] = s.runEntry(ctx, req, e)
	}
	return s.responseBundle("transaction-response", results), nil
}

// resolveIdentities assigns the identity of every write before any is made, maps fullUrls
// to them and rewrites references (urn:uuid fullUrls and conditional references) in all
// resources of the transaction.
func (s *Server) resolveIdentities(ctx context.Context, tx *fhirstore.Tx, entries []*entry) error {
	mapping := map[string]string{}
	seen := map[string]int{}
	claim := func(e *entry) error {
		if prev, dup := seen[e.target]; dup {
			return errorf(http.StatusBadRequest, "invalid", "entries %d and %d both act on %s; a transaction may touch a resource once", prev, e.index, e.target).withExpr(fmt.Sprintf("Bundle.entry[%d]", e.index))
		}
		seen[e.target] = e.index
		return nil
	}
	for _, e := range entries {
		if e.op {
			continue
		}
		where := fmt.Sprintf("Bundle.entry[%d]", e.index)
		switch e.method {
		case http.MethodPost:
			if ine := e.header.Get("If-None-Exist"); ine != "" {
				q, err := url.ParseQuery(strings.TrimPrefix(ine, "?"))
				if err != nil {
					return errorf(http.StatusBadRequest, "invalid", "malformed ifNoneExist").withExpr(where + ".request.ifNoneExist")
				}
				ids, fe := s.match(ctx, tx, e.typ, q, 2)
				if fe != nil {
					return fe.withExpr(where + ".request.ifNoneExist")
				}
				if len(ids) > 1 {
					return errorf(http.StatusPreconditionFailed, "duplicate", "ifNoneExist of entry %d matches more than one %s", e.index, e.typ).withExpr(where + ".request.ifNoneExist")
				}
				if len(ids) == 1 {
					r, err := tx.Read(ctx, e.typ, ids[0])
					if err != nil {
						return err
					}
					e.noop = r
					e.target = e.typ + "/" + ids[0]
					break
				}
			}
			e.target = e.typ + "/" + fhirstore.NewID()
		case http.MethodPut, http.MethodPatch, http.MethodDelete:
			if e.id != "" {
				e.target = e.typ + "/" + e.id
				break
			}
			if len(conditionParams(e.query)) == 0 {
				return errorf(http.StatusBadRequest, "invalid", "entry %d: %s %s needs an id or search parameters", e.index, e.method, e.rawURL).withExpr(where + ".request.url")
			}
			limit := 2
			if e.method == http.MethodDelete {
				limit = maxConditionalDelete + 1
			}
			ids, fe := s.match(ctx, tx, e.typ, e.query, limit)
			if fe != nil {
				return fe.withExpr(where + ".request.url")
			}
			switch {
			case len(ids) == 1:
				e.target = e.typ + "/" + ids[0]
			case len(ids) == 0 && e.method == http.MethodPut:
				id, _ := e.resource["id"].(string)
				if id == "" {
					id = fhirstore.NewID()
				}
				e.target = e.typ + "/" + id
			case len(ids) == 0 && e.method == http.MethodDelete:
				e.target = "" // nothing to delete
			case len(ids) == 0:
				return errorf(http.StatusNotFound, "not-found", "entry %d: the conditional patch matches no %s", e.index, e.typ).withExpr(where + ".request.url")
			default:
				if e.method == http.MethodDelete && len(ids) <= maxConditionalDelete {
					e.target = "" // conditional delete of several: resolved when run
					break
				}
				return errorf(http.StatusPreconditionFailed, "multiple-matches", "entry %d: the condition matches more than one %s", e.index, e.typ).withExpr(where + ".request.url")
			}
		default:
			continue
		}
		if e.target != "" {
			if err := claim(e); err != nil {
				return err
			}
		}
		if e.fullURL != "" && e.target != "" {
			mapping[e.fullURL] = e.target
		}
	}
	// Rewrite references: fullUrls of this Bundle, and conditional references.
	for _, e := range entries {
		if e.resource == nil {
			continue
		}
		var fe *Error
		rewriteRefs(e.resource, func(ref string) string {
			if t, ok := mapping[ref]; ok {
				return t
			}
			if typ, q, ok := strings.Cut(ref, "?"); ok && s.types[typ] && fe == nil {
				vals, err := url.ParseQuery(q)
				if err != nil {
					fe = errorf(http.StatusBadRequest, "invalid", "malformed conditional reference %q", ref)
					return ref
				}
				ids, mfe := s.match(ctx, tx, typ, vals, 2)
				if mfe != nil {
					fe = mfe
					return ref
				}
				if len(ids) != 1 {
					fe = errorf(http.StatusPreconditionFailed, "not-found", "conditional reference %q matches %d resources; it must match exactly one", ref, len(ids))
					return ref
				}
				return typ + "/" + ids[0]
			}
			return ref
		}, mapping)
		if fe != nil {
			return fe.withExpr(fmt.Sprintf("Bundle.entry[%d].resource", e.index))
		}
	}
	return nil
}

// rewriteRefs rewrites the links of a transaction in a resource, as http.html#trules asks:
// Reference.reference through ref (mapped fullUrls and conditional references), elements
// of type uri, url, oid and uuid equal to a mapped fullUrl, and quoted mapped fullUrls in
// the narrative (href and src). Elements of other types (string, canonical ...) are left
// alone: an Identifier.value that happens to equal a fullUrl stays what the client sent.
func rewriteRefs(node any, ref func(string) string, mapping map[string]string) {
	rw := linkRewriter{ref: ref, mapping: mapping}
	rw.rewrite(node, "Resource")
}

type linkRewriter struct {
	ref     func(string) string
	mapping map[string]string
}

// rewrite returns v, of FHIR type typ ("" when unknown), with its links rewritten.
func (rw linkRewriter) rewrite(v any, typ string) any {
	switch n := v.(type) {
	case string:
		switch typ {
		case "uri", "url", "oid", "uuid":
			if t, ok := rw.mapping[n]; ok {
				return t
			}
		}
		return n
	case []any:
		for i := range n {
			n[i] = rw.rewrite(n[i], typ)
		}
		return n
	case map[string]any:
		if rt, ok := n["resourceType"].(string); ok && (typ == "Resource" || typ == "" || fhirpath.IsResourceType(typ)) {
			typ = rt // a resource: the root, contained, Bundle.entry.resource, Parameters
		}
		for k, c := range n {
			switch {
			case k == "resourceType":
			case k == "reference" && (typ == "Reference" || typ == ""):
				if s, ok := c.(string); ok {
					n[k] = rw.ref(s)
				}
			case k == "div" && typ == "Narrative":
				if s, ok := c.(string); ok && strings.Contains(s, ":") {
					for from, to := range rw.mapping {
						s = strings.ReplaceAll(s, `"`+from+`"`, `"`+to+`"`)
					}
					n[k] = s
				}
			default:
				n[k] = rw.rewrite(c, elementType(typ, k))
			}
		}
		return n
	}
	return v
}

// elementType is the FHIR type of element key of type typ, from the R4 model: "" when
// unknown or when the element has several types.
func elementType(typ, key string) string {
	if typ == "" {
		return ""
	}
	if strings.HasPrefix(key, "_") {
		return "Element" // the id and extensions of a primitive
	}
	if info, ok := fhirpath.LookupElement(typ, key); ok {
		if len(info.Types) == 1 {
			return info.Types[0]
		}
		return ""
	}
	// A choice element (valueUri, valueReference): the key ends with the type's name.
	for i := 1; i < len(key); i++ {
		if key[i] < 'A' || key[i] > 'Z' {
			continue
		}
		info, ok := fhirpath.LookupElement(typ, key[:i])
		if !ok || !info.Choice {
			continue
		}
		for _, t := range info.Types {
			if strings.EqualFold(t, key[i:]) {
				return t
			}
		}
	}
	return ""
}

// transactionEntry performs one write of a transaction inside tx.
func (s *Server) transactionEntry(ctx context.Context, tx *fhirstore.Tx, e *entry) (*response, error) {
	ifMatch, fe := ifMatchVersion(&request{header: e.header})
	if fe != nil {
		return nil, fe
	}
	typ, id, _ := strings.Cut(e.target, "/")
	switch e.method {
	case http.MethodPost:
		if e.noop != nil {
			return &response{status: http.StatusOK, res: e.noop, body: e.noop.Body, location: true}, nil
		}
		return s.createTx(ctx, tx, typ, id, e.resource, "")
	case http.MethodPut:
		if bid, _ := e.resource["id"].(string); e.id != "" && bid != e.id {
			return nil, errorf(http.StatusBadRequest, "invalid", "the resource id %q does not match the request URL id %q", bid, e.id)
		}
		return s.updateTx(ctx, tx, typ, id, e.resource, ifMatch, "PUT")
	case http.MethodPatch:
		ct, patchBody, fe := entryPatch(e)
		if fe != nil {
			return nil, fe
		}
		return s.patchTx(ctx, tx, typ, id, ct, patchBody, ifMatch)
	case http.MethodDelete:
		if e.id == "" {
			return s.conditionalDeleteTx(ctx, tx, e.typ, e.query)
		}
		return s.deleteTx(ctx, tx, typ, id, ifMatch)
	}
	return nil, errorf(http.StatusBadRequest, "not-supported", "method %q is not supported in a transaction", e.method)
}

// entryPatch extracts a patch document from a PATCH entry: a Binary holding a JSON Patch,
// or a Parameters resource holding a FHIRPath Patch.
func entryPatch(e *entry) (string, []byte, *Error) {
	if e.resource == nil {
		return "", nil, errorf(http.StatusBadRequest, "required", "a PATCH entry needs a resource: a Binary JSON Patch or a Parameters FHIRPath Patch")
	}
	switch e.resource["resourceType"] {
	case "Parameters":
		b, _ := json.Marshal(e.resource)
		return "application/fhir+json", b, nil
	case "Binary":
		data, _ := e.resource["data"].(string)
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return "", nil, errorf(http.StatusBadRequest, "invalid", "the Binary of a PATCH entry holds no base64 JSON Patch")
		}
		return "application/json-patch+json", b, nil
	}
	return "", nil, errorf(http.StatusBadRequest, "invalid", "a PATCH entry's resource must be Binary (JSON Patch) or Parameters (FHIRPath Patch)")
}

// batch processes each entry independently: one failure does not affect the others.
func (s *Server) batch(ctx context.Context, req *request, entries []*entry) (*response, error) {
	results := make([]bundleEntry, len(entries))
	for _, e := range entries {
		if e.err != nil {
			results[e.index] = errorEntry(e.err)
			continue
		}
		results[e.index] = s.runEntry(ctx, req, e)
	}
	return s.responseBundle("batch-response", results), nil
}

// runEntry runs one entry as its own interaction through the dispatcher.
func (s *Server) runEntry(ctx context.Context, outer *request, e *entry) bundleEntry {
	u := strings.TrimPrefix(e.rawURL, s.FHIRBase()+"/")
	path, _, _ := strings.Cut(u, "?")
	sub := &request{method: e.method, segs: strings.Split(strings.Trim(path, "/"), "/"), query: e.query, header: e.header.Clone(), inBundle: true}
	for _, p := range outer.header.Values("Prefer") {
		sub.header.Add("Prefer", p)
	}
	switch e.method {
	case http.MethodPost, http.MethodPut:
		sub.body, _ = json.Marshal(e.resource)
	case http.MethodPatch:
		ct, b, fe := entryPatch(e)
		if fe != nil {
			return errorEntry(fe)
		}
		sub.header.Set("Content-Type", ct)
		sub.body = b
	}
	resp, _, err := s.dispatch(ctx, sub)
	if err != nil {
		return errorEntry(asError(err))
	}
	return s.entryResult(outer, resp)
}

func errorEntry(fe *Error) bundleEntry {
	return bundleEntry{Response: &entryResponse{Status: fmtStatus(fe.Status), Outcome: outcomeJSON(fe.Issues)}}
}

// entryResult turns an interaction's response into a response Bundle entry, honouring the
// client's return preference.
func (s *Server) entryResult(outer *request, resp *response) bundleEntry {
	be := bundleEntry{Response: &entryResponse{Status: fmtStatus(resp.status)}}
	if resp.res != nil {
		be.Response.Etag = resp.res.ETag()
		be.Response.LastModified = fhirstore.FormatInstant(resp.res.LastUpdated)
		if resp.location || resp.status == http.StatusCreated {
			be.Response.Location = resp.res.Type + "/" + resp.res.ID + "/_history/" + strconv.FormatInt(resp.res.Version, 10)
		}
		if !resp.res.Deleted {
			be.FullURL = s.FHIRBase() + "/" + resp.res.Type + "/" + resp.res.ID
		}
	}
	switch preferReturn(outer.header) {
	case "minimal":
	case "OperationOutcome":
		be.Response.Outcome = resp.outcome
	default:
		if resp.body != nil && resp.status != http.StatusNotModified {
			be.Resource = resp.body
		}
	}
	return be
}

func (s *Server) responseBundle(typ string, entries []bundleEntry) *response {
	b := bundleJSON{ResourceType: "Bundle", ID: fhirstore.NewID(), Type: typ, Timestamp: fhirstore.FormatInstant(time.Now()), Entry: entries}
	body, _ := json.Marshal(b)
	return &response{status: http.StatusOK, body: body}
}
