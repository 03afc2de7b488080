package fhirstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// CompartmentRef names a compartment search: Patient/123/Observation has Type "Patient"
// and ID "123" (the searched type is SearchRequest.Type).
type CompartmentRef struct {
	Type string
	ID   string
}

// SearchRequest is one FHIR search.
type SearchRequest struct {
	// Type is the searched resource type; "" is a system search (narrowed by _type).
	Type string
	// Params are the query parameters as received, control parameters (_count, _sort,
	// _include ...) included.
	Params url.Values
	// Compartment, when set, restricts the search to a compartment.
	Compartment *CompartmentRef
	// Lenient ignores unknown and unsupported parameters (Prefer: handling=lenient)
	// and reports them in SearchResult.Issues; otherwise they fail with *SearchError.
	Lenient bool
	// Cursor is the opaque page cursor of a previous result ("" for the first page).
	Cursor string
	// BaseURL is the server's base ("https://host/fhir"), optional: a reference
	// parameter given as an absolute URL under it ([base]/Patient/1) then matches the
	// relative references stored (Patient/1), as search.html asks.
	BaseURL string
}

// SearchResult is one page of a search.
type SearchResult struct {
	// Matches are the page's resources in order (search.mode = match).
	Matches []*Resource
	// Included are the _include/_revinclude results (search.mode = include).
	Included []*Resource
	// Total is the number of matches over all pages, set only when asked for
	// (_total=accurate or estimate, or _summary=count).
	Total *int
	// Next is the opaque cursor of the next page, "" on the last page.
	Next string
	// Issues lists the parameters ignored in lenient mode.
	Issues []Issue
	// SelfParams are the parameters the search used, for the self link.
	SelfParams url.Values
	// Summary is the _summary value ("true", "text", "data", "count", "false" or "").
	Summary string
	// Elements is the parsed _elements list.
	Elements []string
	// Count is the page size used.
	Count int
}

// Issue is one problem with a search parameter that lenient handling ignored.
type Issue struct {
	Param string
	Msg   string
}

// SearchError reports an unknown, malformed or unsupported search parameter; the server
// answers 400 with an OperationOutcome built from it. Msg is safe to show to the client.
type SearchError struct {
	// Param is the parameter as given (e.g. "date", "subject:Patient.name").
	Param string
	// Msg says what is wrong.
	Msg string
	// Unsupported is true when the parameter is valid FHIR that Vigil does not support.
	Unsupported bool
}

// Error implements error.
func (e *SearchError) Error() string {
	if e.Param == "" {
		return "fhirstore: search: " + e.Msg
	}
	return fmt.Sprintf("fhirstore: search parameter %q: %s", e.Param, e.Msg)
}

func badParam(param, format string, args ...any) *SearchError {
	return &SearchError{Param: param, Msg: fmt.Sprintf(format, args...)}
}

func unsupported(param, format string, args ...any) *SearchError {
	return &SearchError{Param: param, Msg: fmt.Sprintf(format, args...), Unsupported: true}
}

// DefaultPageSize is the page size when _count is absent.
const DefaultPageSize = 20

// maxIncluded bounds the resources _include/_revinclude add to one page.
const maxIncluded = 1000

// maxChainDepth bounds chains and nested _has.
const maxChainDepth = 6

// queryer is what a search reads through: the pool or a write transaction.
type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// frag is a piece of SQL with its arguments, in placeholder order.
type frag struct {
	sql  string
	args []any
}

// ridIn builds "a.rid [NOT] IN (SELECT col FROM ... WHERE ...)"; from is
// "FROM ... WHERE ..." and col the selected rid column. It also records the same
// condition correlated to the outer row (EXISTS ... WHERE col = a.rid, same arguments):
// SQLite drives a query from its first "rid IN (subquery)" and materialises every other
// IN list, so plan uses this form for the conditions after the first, an index lookup per
// candidate row.
func (b *qb) ridIn(a string, negate bool, col, from string, args []any) frag {
	not := ""
	if negate {
		not = "NOT "
	}
	f := frag{a + ".rid " + not + "IN (SELECT " + col + " " + from + ")", args}
	k := strings.Index(from, " WHERE ")
	if b.correlated == nil {
		b.correlated = map[string]string{}
	}
	// The row is found by rid: a type condition (redundant once rid is known) would make
	// SQLite prefer the (type, param, value) index and scan it; keep its argument.
	// PostgreSQL keeps it for tokens and references: with the type, the (type, param,
	// value..., rid) index answers the probe by itself. Other tables are probed by rid
	// (idx_date_rid covers the bounds).
	alias := col[:strings.IndexByte(col, '.')]
	cond := from[k+len(" WHERE "):]
	keepType := b.s != nil && b.s.d.name() == "postgres" &&
		(strings.HasPrefix(from, "FROM idx_token ") || strings.HasPrefix(from, "FROM idx_reference "))
	if !keepType {
		cond = strings.Replace(cond, alias+".type = ?", "CAST(? AS TEXT) <> ''", 1)
	}
	b.correlated[f.sql] = not + "EXISTS (SELECT 1 " + from[:k] + " WHERE " + col + " = " + a + ".rid AND " + cond + ")"
	return f
}

func (f frag) empty() bool { return f.sql == "" }

func joinFrags(sep string, fs []frag) frag {
	var parts []string
	var args []any
	for _, f := range fs {
		if f.empty() {
			continue
		}
		parts = append(parts, f.sql)
		args = append(args, f.args...)
	}
	if len(parts) == 0 {
		return frag{}
	}
	if len(parts) == 1 {
		return frag{parts[0], args}
	}
	return frag{"(" + strings.Join(parts, sep) + ")", args}
}

// registry returns the registry searches use: the indexer's when it is a SearchIndexer.
func (s *Store) registry() *Registry {
	if ix, ok := s.indexer.(*SearchIndexer); ok {
		return ix.Registry
	}
	r, err := NewRegistry()
	if err != nil {
		// The embedded definitions are part of the binary; tests prove they load.
		return &Registry{snap: &registrySnapshot{byType: map[string]map[string]*searchParam{}, raw: map[string]*rawSearchParam{}, types: map[string]bool{}}}
	}
	return r
}

// SearchParams returns the search parameters of typ for the CapabilityStatement.
func (s *Store) SearchParams(typ string) []SearchParamInfo { return s.registry().SearchParams(typ) }

// RegisterSearchParameter registers a custom SearchParameter (status=active) so that new
// writes are indexed with it; see Reindex for existing resources.
func (s *Store) RegisterSearchParameter(sp map[string]any) error { return s.registry().Register(sp) }

// Search runs a search on the committed data.
func (s *Store) Search(ctx context.Context, req SearchRequest) (*SearchResult, error) {
	return s.search(ctx, s.db, req)
}

// Search runs a search inside the transaction (it sees the transaction's writes), for
// conditional operations.
func (tx *Tx) Search(ctx context.Context, req SearchRequest) (*SearchResult, error) {
	if tx.s.d.name() == "postgres" && !tx.planned {
		// The write pool plans generically (store.go); a search is planned for its values.
		// Once per transaction (Savepoint clears the mark when it undoes the setting).
		if _, err := tx.tx.ExecContext(ctx, `SET LOCAL plan_cache_mode = auto`); err != nil {
			return nil, fmt.Errorf("fhirstore: search: %w", err)
		}
		tx.planned = true
	}
	return tx.s.search(ctx, tx.tx, req)
}

// qb builds the SQL of one search.
type qb struct {
	s       *Store
	snap    *registrySnapshot
	now     time.Time
	aliases int
	// correlated maps the text of a top-level "rid IN (...)" condition to its EXISTS
	// form (see ridIn).
	correlated map[string]string
	// base is SearchRequest.BaseURL without a trailing slash.
	base string
}

func (b *qb) alias(prefix string) string {
	b.aliases++
	return prefix + strconv.Itoa(b.aliases)
}

// sortKey is one _sort key.
type sortKey struct {
	name string
	desc bool
	kind byte // 'i' int, 'f' float, 's' text
	expr frag
	// dateParam is the parameter of a date sort key ("" otherwise), for the ordered
	// index scan of pageByDate.
	dateParam string
}

// includeSpec is one _include or _revinclude value.
type includeSpec struct {
	rev     bool
	iterate bool
	srcType string // the type holding the reference ("*" for any)
	param   string // "*" for every reference parameter
	target  string // optional target type
}

// controlParams are the result parameters (not filters).
var controlParams = map[string]bool{
	"_count": true, "_sort": true, "_include": true, "_revinclude": true, "_total": true,
	"_summary": true, "_elements": true, "_type": true, "_format": true, "_pretty": true,
	"_include:iterate": true, "_revinclude:iterate": true, "_include:recurse": true, "_revinclude:recurse": true,
	"_contained": true, "_containedType": true,
}

// unsupportedParams are standard parameters Vigil does not implement.
var unsupportedParams = map[string]bool{
	"_text": true, "_content": true, "_filter": true, "_query": true, "_list": true,
}

type searchPlan struct {
	types    []string // "" element = all
	where    []frag
	sorts    []sortKey
	count    int
	total    string
	summary  string
	elements []string
	includes []includeSpec
	self     url.Values
	issues   []Issue
	hash     uint64
}

func (s *Store) search(ctx context.Context, q queryer, req SearchRequest) (*SearchResult, error) {
	b := &qb{s: s, snap: s.registry().snapshot(), now: s.Now(), base: strings.TrimSuffix(req.BaseURL, "/")}
	plan, err := b.plan(req)
	if err != nil {
		return nil, err
	}
	res := &SearchResult{SelfParams: plan.self, Issues: plan.issues, Summary: plan.summary, Elements: plan.elements, Count: plan.count}
	where := joinFrags(" AND ", plan.where)
	if plan.total == "accurate" || plan.total == "estimate" || plan.summary == "count" {
		n, err := s.count(ctx, q, where, plan)
		if err != nil {
			return nil, err
		}
		res.Total = &n
	}
	if plan.summary == "count" || plan.count == 0 {
		return res, nil
	}
	var after []string
	var afterRID int64
	if req.Cursor != "" {
		after, afterRID, err = decodeCursor(req.Cursor, plan)
		if err != nil {
			return nil, err
		}
	}
	rows, keys, err := s.page(ctx, q, where, plan, after, afterRID)
	if err != nil {
		return nil, err
	}
	if len(rows) > plan.count {
		rows, keys = rows[:plan.count], keys[:plan.count]
		last := len(rows) - 1
		res.Next = encodeCursor(plan, keys[last], rows[last].rid)
	}
	matchRIDs := make([]int64, len(rows))
	for i, r := range rows {
		res.Matches = append(res.Matches, r.res)
		matchRIDs[i] = r.rid
	}
	if len(plan.includes) > 0 && len(rows) > 0 {
		inc, err := s.includes(ctx, q, plan.includes, rows)
		if err != nil {
			return nil, err
		}
		res.Included = inc
	}
	return res, nil
}

// plan parses the request into SQL conditions and result options.
func (b *qb) plan(req SearchRequest) (*searchPlan, error) {
	p := &searchPlan{count: DefaultPageSize, self: url.Values{}}
	fail := func(err error) error {
		var e *SearchError
		if req.Lenient && errors.As(err, &e) {
			p.issues = append(p.issues, Issue{Param: e.Param, Msg: e.Msg})
			return nil
		}
		return err
	}
	if req.Type != "" {
		if !b.snap.types[req.Type] {
			return nil, badParam("", "unknown resource type %q", req.Type)
		}
		p.types = []string{req.Type}
	} else if ts := req.Params["_type"]; len(ts) > 0 {
		for _, v := range ts {
			for _, t := range strings.Split(v, ",") {
				t = strings.TrimSpace(t)
				if !b.snap.types[t] {
					if err := fail(badParam("_type", "unknown resource type %q", t)); err != nil {
						return nil, err
					}
					continue
				}
				p.types = append(p.types, t)
			}
		}
		p.self["_type"] = ts
	}
	typ := ""
	if len(p.types) == 1 {
		typ = p.types[0]
	}
	p.where = append(p.where, frag{"r.deleted = 0", nil})
	if len(p.types) > 0 {
		p.where = append(p.where, inList("r.type", p.types))
	}
	if req.Compartment != nil {
		f, err := b.compartment(req.Compartment, req.Type)
		if err != nil {
			return nil, err
		}
		p.where = append(p.where, f)
	}
	var filters []prioritized
	var prune []frag // necessary conditions on the reference rows' date span
	keys := make([]string, 0, len(req.Params))
	for k := range req.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		vals := req.Params[key]
		switch {
		case key == "_type":
			continue
		case key == "_count":
			n, err := strconv.Atoi(last(vals))
			if err != nil || n < 0 {
				if err := fail(badParam(key, "must be a non-negative integer")); err != nil {
					return nil, err
				}
				continue
			}
			p.count = min(n, MaxPageSize)
			p.self.Set(key, strconv.Itoa(p.count))
			continue
		case key == "_total":
			v := last(vals)
			if v != "none" && v != "estimate" && v != "accurate" {
				if err := fail(badParam(key, "must be none, estimate or accurate")); err != nil {
					return nil, err
				}
				continue
			}
			p.total = v
			p.self.Set(key, v)
			continue
		case key == "_summary":
			v := last(vals)
			switch v {
			case "true", "false", "text", "data", "count":
			default:
				if err := fail(badParam(key, "must be true, false, text, data or count")); err != nil {
					return nil, err
				}
				continue
			}
			p.summary = v
			p.self.Set(key, v)
			continue
		case key == "_elements":
			for _, v := range vals {
				for _, e := range strings.Split(v, ",") {
					if e = strings.TrimSpace(e); e != "" {
						p.elements = append(p.elements, e)
					}
				}
			}
			p.self[key] = vals
			continue
		case key == "_sort":
			var used []string
			for _, v := range vals {
				for _, k := range strings.Split(v, ",") {
					sk, err := b.sortKey(typ, strings.TrimSpace(k))
					if err != nil {
						if err := fail(err); err != nil {
							return nil, err
						}
						continue
					}
					p.sorts = append(p.sorts, sk)
					used = append(used, strings.TrimSpace(k))
				}
			}
			if len(used) > 0 {
				p.self.Set(key, strings.Join(used, ","))
			}
			continue
		case strings.HasPrefix(key, "_include") || strings.HasPrefix(key, "_revinclude"):
			mod := ""
			base := key
			if i := strings.IndexByte(key, ':'); i >= 0 {
				base, mod = key[:i], key[i+1:]
			}
			if (base != "_include" && base != "_revinclude") || (mod != "" && mod != "iterate" && mod != "recurse") {
				if err := fail(badParam(key, "unknown include modifier")); err != nil {
					return nil, err
				}
				continue
			}
			for _, v := range vals {
				spec, err := b.includeSpec(base == "_revinclude", mod != "", key, v)
				if err != nil {
					if err := fail(err); err != nil {
						return nil, err
					}
					continue
				}
				p.includes = append(p.includes, spec)
				p.self.Add(key, v)
			}
			continue
		case key == "_format" || key == "_pretty":
			continue
		case key == "_contained" || key == "_containedType":
			if err := fail(unsupported(key, "contained resources are not searched")); err != nil {
				return nil, err
			}
			continue
		case unsupportedParams[key] || strings.HasPrefix(key, "_text:") || strings.HasPrefix(key, "_content:"):
			if err := fail(unsupported(key, "parameter %s is not supported", key)); err != nil {
				return nil, err
			}
			continue
		}
		for _, v := range vals {
			var f frag
			var err error
			if typ == "" && len(p.types) > 1 {
				f, err = b.multiTypeCond(p.types, key, v)
			} else {
				f, err = b.cond("r", typ, key, v, 0)
			}
			if err != nil {
				// Errors of a chain's inner parameter name the parameter as given.
				var se *SearchError
				if errors.As(err, &se) {
					se.Param = key
				}
				if err := fail(err); err != nil {
					return nil, err
				}
				continue
			}
			filters = append(filters, prioritized{b.priority(typ, key), f})
			p.self.Add(key, v)
			if key == "date" && typ != "" {
				if pf, ok := b.datePrune(typ, v); ok {
					prune = append(prune, pf)
				}
			}
		}
	}
	// SQLite drives a query from its first rid IN (...) condition: put the most selective
	// kinds first (ids, references such as patient=X, identifiers), broad codes last.
	// PostgreSQL plans by cost and does not care.
	sort.SliceStable(filters, func(i, j int) bool { return filters[i].prio < filters[j].prio })
	for k, f := range filters {
		if alt, ok := b.correlated[f.f.sql]; ok && k > 0 {
			f.f = frag{alt, f.f.args}
		}
		p.where = append(p.where, f.f)
	}
	if len(filters) > 0 && b.correlated[filters[0].f.sql] != "" && len(p.types) == 1 && b.s != nil && b.s.d.name() == "sqlite" {
		// With a rid IN (...) to drive from, keep SQLite off the (type, last_updated)
		// index: it would scan every resource of the type and probe the IN list.
		// (PostgreSQL plans by cost, and would misjudge the expression.)
		for k, w := range p.where {
			if w.sql == "r.type = ?" {
				p.where[k].sql = "r.type || '' = ?"
			}
		}
	}
	if len(filters) > 0 && len(prune) > 0 {
		p.where = pruneReferenceDriver(p.where, filters[0].f.sql, prune)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s|", req.Type)
	if req.Compartment != nil {
		fmt.Fprintf(h, "%s/%s|", req.Compartment.Type, req.Compartment.ID)
	}
	self := p.self
	for _, k := range sortedKeys(self) {
		if k == "_count" || k == "_total" {
			continue
		}
		fmt.Fprintf(h, "%s=%q&", k, self[k])
	}
	p.hash = binary.BigEndian.Uint64(h.Sum(nil))
	return p, nil
}

// prioritized is a filter with its place in the WHERE clause (lower first).
type prioritized struct {
	prio int
	f    frag
}

// priority guesses how selective a filter is from its parameter's type.
func (b *qb) priority(typ, key string) int {
	if strings.HasPrefix(key, "_has:") {
		return 4
	}
	head, _, chained := strings.Cut(key, ".")
	name, mod, _ := strings.Cut(head, ":")
	if name == "_id" {
		return 0
	}
	if mod == "missing" || mod == "not" {
		return 9
	}
	p := b.lookupParam(typ, name)
	if p == nil {
		return 5
	}
	switch {
	case chained:
		return 3
	case p.typ == ParamReference:
		return 1
	case name == "identifier" || mod == "identifier":
		return 2
	case p.typ == ParamString || p.typ == ParamURI || p.typ == ParamComposite:
		return 4
	case p.typ == ParamDate || p.typ == ParamNumber || p.typ == ParamQuantity:
		return 6
	}
	return 7
}

func sortedKeys(v url.Values) []string {
	ks := make([]string, 0, len(v))
	for k := range v {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func last(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	return vals[len(vals)-1]
}

func inList(col string, vals []string) frag {
	if len(vals) == 1 {
		return frag{col + " = ?", []any{vals[0]}}
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return frag{col + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ") + ")", args}
}

// multiTypeCond applies a parameter to a system search over several types: each type
// with its own definition.
func (b *qb) multiTypeCond(types []string, key, value string) (frag, error) {
	var fs []frag
	var firstErr error
	for _, t := range types {
		f, err := b.cond("r", t, key, value, 0)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		fs = append(fs, frag{"(r.type = ? AND " + f.sql + ")", append([]any{t}, f.args...)})
	}
	if len(fs) == 0 {
		return frag{}, firstErr
	}
	return joinFrags(" OR ", fs), nil
}

// lookupParam finds the definition of code for typ ("" = the common parameters).
func (b *qb) lookupParam(typ, code string) *searchParam {
	if typ == "" {
		return b.snap.byType["Resource"][code]
	}
	return b.snap.lookup(typ, code)
}

// cond builds the condition of one parameter key=value on the resource alias a of type
// typ. Chains and _has recurse with depth.
func (b *qb) cond(a, typ, key, value string, depth int) (frag, error) {
	if depth > maxChainDepth {
		return frag{}, badParam(key, "chain deeper than %d", maxChainDepth)
	}
	if strings.HasPrefix(key, "_has:") {
		return b.hasCond(a, typ, key, value, depth)
	}
	head, rest, chained := strings.Cut(key, ".")
	name, mod, _ := strings.Cut(head, ":")
	if chained {
		return b.chainCond(a, typ, key, name, mod, rest, value, depth)
	}
	return b.leaf(a, typ, key, name, mod, value)
}

func (b *qb) hasCond(a, typ, key, value string, depth int) (frag, error) {
	parts := strings.SplitN(key, ":", 4)
	if len(parts) != 4 || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return frag{}, badParam(key, "_has must be _has:Type:reference:parameter")
	}
	src, refName, inner := parts[1], parts[2], parts[3]
	if !b.snap.types[src] {
		return frag{}, badParam(key, "unknown resource type %q", src)
	}
	rp := b.lookupParam(src, refName)
	if rp == nil || rp.typ != ParamReference {
		return frag{}, badParam(key, "%s has no reference parameter %q", src, refName)
	}
	r2 := b.alias("h")
	ref := b.alias("hr")
	innerF, err := b.cond(r2, src, inner, value, depth+1)
	if err != nil {
		return frag{}, err
	}
	targetCond := ref + ".target_type = " + a + ".type"
	var targs []any
	if typ != "" {
		targetCond = ref + ".target_type = ?"
		targs = []any{typ}
	}
	sqlText := a + ".id IN (SELECT " + ref + ".target_id FROM idx_reference " + ref + " JOIN resource " + r2 + " ON " + r2 + ".rid = " + ref + ".rid WHERE " +
		ref + ".type = ? AND " + ref + ".param = ? AND " + targetCond + " AND " + r2 + ".deleted = 0 AND " + innerF.sql + ")"
	args := append([]any{src, refName}, targs...)
	args = append(args, innerF.args...)
	return frag{sqlText, args}, nil
}

func (b *qb) chainCond(a, typ, key, name, mod, rest, value string, depth int) (frag, error) {
	p := b.lookupParam(typ, name)
	if p == nil {
		return frag{}, badParam(key, "unknown search parameter %q", name)
	}
	if p.typ != ParamReference {
		return frag{}, badParam(key, "%q is not a reference parameter and cannot be chained", name)
	}
	var targets []string
	if mod != "" {
		if !b.snap.types[mod] {
			return frag{}, badParam(key, "unknown resource type %q", mod)
		}
		targets = []string{mod}
	} else {
		nextName := rest
		if !strings.HasPrefix(rest, "_has:") {
			nextName, _, _ = strings.Cut(rest, ".")
			nextName, _, _ = strings.Cut(nextName, ":")
		}
		for _, t := range p.targets {
			if strings.HasPrefix(rest, "_has:") || b.snap.lookup(t, nextName) != nil {
				targets = append(targets, t)
			}
		}
		if len(targets) == 0 {
			return frag{}, badParam(key, "no target type of %q has a parameter %q", name, nextName)
		}
	}
	ref := b.alias("cr")
	var alts []frag
	var firstErr error
	for _, t := range targets {
		r2 := b.alias("c")
		inner, err := b.cond(r2, t, rest, value, depth+1)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		alts = append(alts, frag{"(" + ref + ".target_type = ? AND " + ref + ".target_id IN (SELECT " + r2 + ".id FROM resource " + r2 + " WHERE " + r2 + ".type = ? AND " + r2 + ".deleted = 0 AND " + inner.sql + "))",
			append([]any{t, t}, inner.args...)})
	}
	if len(alts) == 0 {
		return frag{}, firstErr
	}
	or := joinFrags(" OR ", alts)
	from := "FROM idx_reference " + ref + " WHERE "
	var args []any
	if typ != "" {
		from += ref + ".type = ? AND "
		args = append(args, typ)
	}
	from += ref + ".param = ? AND " + or.sql
	args = append(args, name)
	args = append(args, or.args...)
	return b.ridIn(a, false, ref+".rid", from, args), nil
}

// tableOf returns the index table of a parameter type.
func tableOf(ptyp string) string {
	switch ptyp {
	case ParamToken:
		return "idx_token"
	case ParamString:
		return "idx_string"
	case ParamReference:
		return "idx_reference"
	case ParamDate:
		return "idx_date"
	case ParamNumber:
		return "idx_number"
	case ParamQuantity:
		return "idx_quantity"
	case ParamURI:
		return "idx_uri"
	}
	return ""
}

// splitValues splits a parameter value at unescaped commas (OR) and unescapes \, \$ \| \\.
func splitValues(v string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\\' && i+1 < len(v) {
			cur.WriteByte(c)
			cur.WriteByte(v[i+1])
			i++
			continue
		}
		if c == ',' {
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	return append(out, cur.String())
}

// splitEscaped splits s at unescaped sep.
func splitEscaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == sep {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func unescape(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// leaf builds the condition of a parameter without chain.
func (b *qb) leaf(a, typ, key, name, mod, value string) (frag, error) {
	switch name {
	case "_id":
		return b.idCond(a, key, mod, value)
	case "_lastUpdated":
		if mod != "" {
			return frag{}, badParam(key, "modifier :%s is not allowed on _lastUpdated", mod)
		}
		var fs []frag
		for _, v := range splitValues(value) {
			f, err := datePred(key, a+".last_updated", a+".last_updated", v, b.now)
			if err != nil {
				return frag{}, err
			}
			fs = append(fs, f)
		}
		return joinFrags(" OR ", fs), nil
	}
	if v, ok := b.snap.virtualOf(typ, name); ok {
		return b.virtualCond(a, typ, key, v, mod, value)
	}
	p := b.lookupParam(typ, name)
	if p == nil {
		t := typ
		if t == "" {
			t = "a system search"
		}
		return frag{}, badParam(key, "unknown search parameter %q for %s", name, t)
	}
	if p.expr == nil {
		return frag{}, unsupported(key, "search parameter %q is not supported", name)
	}
	if mod == "missing" {
		missing := false
		switch value {
		case "true":
			missing = true
		case "false":
		default:
			return frag{}, badParam(key, ":missing must be true or false")
		}
		table, param := tableOf(p.typ), name
		if p.typ == ParamComposite {
			table, param = tableOf(p.comps[0].typ), name+"$0"
		}
		i := b.alias("m")
		from, args := b.indexFrom(i, table, typ, param)
		return b.ridIn(a, missing, i+".rid", from, args), nil
	}
	if p.typ == ParamComposite {
		return b.compositeCond(a, typ, key, p, mod, value)
	}
	table := tableOf(p.typ)
	param := name
	negate := false
	switch {
	case mod == "not" && (p.typ == ParamToken || p.typ == ParamString || p.typ == ParamReference || p.typ == ParamURI):
		negate = true
	case mod == "identifier" && p.typ == ParamReference:
		table, param = "idx_token", name+":identifier"
	case mod == "of-type" && p.typ == ParamToken:
		param = name + ":of-type"
	}
	i := b.alias("i")
	var preds []frag
	for _, v := range splitValues(value) {
		var f frag
		var err error
		switch {
		case mod == "identifier" && p.typ == ParamReference:
			f, err = tokenPred(i, key, "", v)
		case p.typ == ParamToken:
			f, err = tokenPred(i, key, mod, v)
		case p.typ == ParamString:
			f, err = stringPred(i, key, mod, v)
		case p.typ == ParamReference:
			f, err = b.referencePred(i, key, p, mod, v)
		case p.typ == ParamDate:
			if mod != "" {
				return frag{}, badParam(key, "modifier :%s is not allowed on a date parameter", mod)
			}
			f, err = datePred(key, i+".low", i+".high", v, b.now)
		case p.typ == ParamNumber:
			if mod != "" {
				return frag{}, badParam(key, "modifier :%s is not allowed on a number parameter", mod)
			}
			f, err = numberPred(i, key, v)
		case p.typ == ParamQuantity:
			if mod != "" {
				return frag{}, badParam(key, "modifier :%s is not allowed on a quantity parameter", mod)
			}
			f, err = quantityPred(i, key, v)
		case p.typ == ParamURI:
			f, err = uriPred(i, key, mod, v)
		default:
			return frag{}, unsupported(key, "parameter type %s is not supported", p.typ)
		}
		if err != nil {
			return frag{}, err
		}
		preds = append(preds, f)
	}
	or := joinFrags(" OR ", preds)
	from, args := b.indexFrom(i, table, typ, param)
	if !or.empty() {
		from += " AND " + or.sql
		args = append(args, or.args...)
	}
	return b.ridIn(a, negate, i+".rid", from, args), nil
}

// virtualCond answers a virtual parameter from the rows of the parameters it stands for.
func (b *qb) virtualCond(a, typ, key string, v virtualParam, mod, value string) (frag, error) {
	// parts joins the same condition on every part.
	parts := func(sep string) (frag, error) {
		var fs []frag
		for _, part := range v.parts {
			f, err := b.leaf(a, typ, key, part, mod, value)
			if err != nil {
				return frag{}, err
			}
			fs = append(fs, f)
		}
		return joinFrags(sep, fs), nil
	}
	if !v.and {
		// Any of the parts; :not and :missing=true need all of them.
		if mod == "not" || (mod == "missing" && value == "true") {
			return parts(" AND ")
		}
		return parts(" OR ")
	}
	switch mod {
	case "":
	case "missing":
		// A composite over the resource is missing when any component is.
		if value == "true" {
			return parts(" OR ")
		}
		return parts(" AND ")
	default:
		return frag{}, badParam(key, "modifier :%s is not allowed on a composite parameter", mod)
	}
	var alts []frag
	for _, val := range splitValues(value) {
		comps := splitEscaped(val, '$')
		if len(comps) != len(v.parts) {
			return frag{}, badParam(key, "a value of %s has %d components separated by $", key, len(v.parts))
		}
		var fs []frag
		for k, part := range v.parts {
			// The component is one value: keep its escaped commas escaped.
			f, err := b.leaf(a, typ, key, part, "", comps[k])
			if err != nil {
				return frag{}, err
			}
			fs = append(fs, f)
		}
		alts = append(alts, joinFrags(" AND ", fs))
	}
	return joinFrags(" OR ", alts), nil
}

// indexFrom is the FROM ... WHERE of an index table's rows of one parameter.
func (b *qb) indexFrom(i, table, typ, param string) (string, []any) {
	if typ == "" {
		return "FROM " + table + " " + i + " WHERE " + i + ".param = ?", []any{param}
	}
	return "FROM " + table + " " + i + " WHERE " + i + ".type = ? AND " + i + ".param = ?", []any{typ, param}
}

func (b *qb) idCond(a, key, mod, value string) (frag, error) {
	vals := splitValues(value)
	for i := range vals {
		vals[i] = unescape(vals[i])
	}
	switch mod {
	case "":
		return inList(a+".id", vals), nil
	case "not":
		f := inList(a+".id", vals)
		return frag{"NOT (" + f.sql + ")", f.args}, nil
	case "missing":
		if value == "false" {
			return frag{"1 = 1", nil}, nil
		}
		return frag{"1 = 0", nil}, nil
	}
	return frag{}, badParam(key, "modifier :%s is not allowed on _id", mod)
}

func tokenPred(i, key, mod, v string) (frag, error) {
	switch mod {
	case "", "not":
	case "text":
		return frag{i + ".text LIKE ? ESCAPE '\\'", []any{"%" + likeEscape(NormalizeString(unescape(v))) + "%"}}, nil
	case "of-type":
		parts := splitEscaped(v, '|')
		if len(parts) != 3 || parts[2] == "" {
			return frag{}, badParam(key, ":of-type takes system|code|value")
		}
		return frag{i + ".system = ? AND " + i + ".code = ? AND " + i + ".text = ?", []any{unescape(parts[0]), unescape(parts[1]), unescape(parts[2])}}, nil
	case "above", "below", "in", "not-in":
		return frag{}, unsupported(key, "token modifier :%s (terminology subsumption) is not supported", mod)
	default:
		return frag{}, badParam(key, "modifier :%s is not allowed on a token parameter", mod)
	}
	parts := splitEscaped(v, '|')
	switch len(parts) {
	case 1:
		if v == "" {
			return frag{}, badParam(key, "empty value")
		}
		return frag{i + ".code = ?", []any{unescape(v)}}, nil
	case 2:
		sys, code := unescape(parts[0]), unescape(parts[1])
		switch {
		case code == "" && sys == "":
			return frag{}, badParam(key, "empty value")
		case code == "":
			return frag{i + ".system = ?", []any{sys}}, nil
		default:
			return frag{"(" + i + ".code = ? AND " + i + ".system = ?)", []any{code, sys}}, nil
		}
	}
	return frag{}, badParam(key, "a token is [system|]code")
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func stringPred(i, key, mod, v string) (frag, error) {
	v = unescape(v)
	switch mod {
	case "", "not":
		return frag{i + ".norm LIKE ? ESCAPE '\\'", []any{likeEscape(NormalizeString(v)) + "%"}}, nil
	case "exact":
		return frag{i + ".exact = ?", []any{v}}, nil
	case "contains", "text":
		return frag{i + ".norm LIKE ? ESCAPE '\\'", []any{"%" + likeEscape(NormalizeString(v)) + "%"}}, nil
	}
	return frag{}, badParam(key, "modifier :%s is not allowed on a string parameter", mod)
}

func uriPred(i, key, mod, v string) (frag, error) {
	v = unescape(v)
	switch mod {
	case "", "not":
		return frag{i + ".uri = ?", []any{v}}, nil
	case "below":
		return frag{i + ".uri LIKE ? ESCAPE '\\'", []any{likeEscape(v) + "%"}}, nil
	case "above":
		return frag{"(length(" + i + ".uri) > 0 AND substr(CAST(? AS TEXT), 1, length(" + i + ".uri)) = " + i + ".uri)", []any{v}}, nil
	}
	return frag{}, badParam(key, "modifier :%s is not allowed on a uri parameter", mod)
}

func (b *qb) referencePred(i, key string, p *searchParam, mod, v string) (frag, error) {
	v = unescape(v)
	if v == "" {
		return frag{}, badParam(key, "empty reference")
	}
	if b.base != "" && strings.HasPrefix(v, b.base+"/") {
		v = strings.TrimPrefix(v, b.base+"/")
	}
	typeCond := frag{}
	if mod != "" && mod != "not" {
		if !b.snap.types[mod] {
			return frag{}, badParam(key, "modifier :%s is not a resource type", mod)
		}
		typeCond = frag{i + ".target_type = ?", []any{mod}}
	}
	if strings.Contains(v, ":") && !strings.HasPrefix(v, "/") {
		// Absolute, logical or canonical reference.
		u, version, hasVersion := strings.Cut(v, "|")
		fs := []frag{{i + ".url = ?", []any{u}}}
		if hasVersion {
			fs = append(fs, frag{i + ".version = ?", []any{version}})
		}
		f := joinFrags(" AND ", fs)
		return joinFrags(" AND ", []frag{f, typeCond}), nil
	}
	path := v
	version := ""
	if k := strings.Index(path, "/_history/"); k >= 0 {
		path, version = path[:k], path[k+len("/_history/"):]
	}
	fs := []frag{typeCond}
	if tt, id, ok := strings.Cut(path, "/"); ok {
		if !b.snap.types[tt] {
			return frag{}, badParam(key, "unknown resource type %q in reference", tt)
		}
		if mod != "" && mod != "not" && mod != tt {
			return frag{}, badParam(key, "reference type %s contradicts modifier :%s", tt, mod)
		}
		fs = append(fs, frag{i + ".target_type = ? AND " + i + ".target_id = ?", []any{tt, id}})
	} else {
		// A bare id matches a target of any type (the modifier, if any, narrows it).
		fs = append(fs, frag{i + ".target_id = ?", []any{path}})
	}
	if version != "" {
		fs = append(fs, frag{i + ".version = ?", []any{version}})
	}
	f := joinFrags(" AND ", fs)
	return frag{"(" + f.sql + ")", f.args}, nil
}

// prefixes of ordered parameter types.
// datePrune is what a single value of the type's "date" parameter implies for the span
// [dlow, dhigh] that reference rows carry (migration 7): a necessary condition, written
// on the placeholder alias "{ref}". ne, OR lists and bad values give none (the exact
// condition still applies, and reports errors).
func (b *qb) datePrune(typ, v string) (frag, bool) {
	if p := b.lookupParam(typ, "date"); p == nil || p.typ != ParamDate || strings.Contains(v, ",") {
		return frag{}, false
	}
	prefix, val := splitPrefix(unescape(v))
	pl, ph, ok := ParseDateRange(val)
	if !ok {
		return frag{}, false
	}
	// A date row [lo, hi] of the resource satisfying the exact condition lies inside the
	// span, so the span satisfies these.
	switch prefix {
	case "eq":
		return frag{"{ref}.dhigh >= ? AND {ref}.dlow <= ?", []any{pl, ph}}, true
	case "gt", "sa":
		return frag{"{ref}.dhigh > ?", []any{ph}}, true
	case "ge":
		return frag{"{ref}.dhigh >= ?", []any{pl}}, true
	case "lt", "eb":
		return frag{"{ref}.dlow < ?", []any{pl}}, true
	case "le":
		return frag{"{ref}.dlow <= ?", []any{ph}}, true
	}
	return frag{}, false
}

// pruneReferenceDriver adds the date-span conditions to the first condition of the
// search when it selects reference rows of the searched resources (patient=X, say): the
// rows of the patient's readings outside the window are then skipped inside the index
// range, without a probe each. first is that condition's SQL as planned.
func pruneReferenceDriver(where []frag, first string, prune []frag) []frag {
	alias, from, ok := ridInIndex(first)
	if !ok || !strings.HasPrefix(from, "idx_reference ") || strings.Contains(from, "SELECT") {
		return where
	}
	for k, w := range where {
		if w.sql != first {
			continue
		}
		sqlText := first[:len(first)-1]
		args := append([]any{}, w.args...)
		for _, pf := range prune {
			sqlText += " AND " + strings.ReplaceAll(pf.sql, "{ref}", alias)
			args = append(args, pf.args...)
		}
		where[k] = frag{sqlText + ")", args}
		break
	}
	return where
}

// ridInIndex reads a condition "r.rid IN (SELECT a.rid FROM <table> a WHERE a.type = ?
// AND ...)" on the index rows of the searched type (indexFrom's shape): the alias a and
// "<table> a WHERE ...". ok is false for any other condition.
func ridInIndex(cond string) (alias, from string, ok bool) {
	const head = "r.rid IN (SELECT "
	if !strings.HasPrefix(cond, head) || !strings.HasSuffix(cond, ")") {
		return "", "", false
	}
	col, from, found := strings.Cut(cond[len(head):len(cond)-1], " FROM ")
	alias, _, _ = strings.Cut(col, ".")
	if !found || col != alias+".rid" {
		return "", "", false
	}
	if _, c, found := strings.Cut(from, " WHERE "); !found || !strings.HasPrefix(c, alias+".type = ? AND ") {
		return "", "", false
	}
	return alias, from, true
}

var prefixes = []string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}

func splitPrefix(v string) (string, string) {
	if len(v) >= 2 {
		for _, p := range prefixes {
			if strings.HasPrefix(v, p) && len(v) > 2 && (v[2] >= '0' && v[2] <= '9' || v[2] == '-' || v[2] == '.' || v[2] == '+') {
				return p, v[2:]
			}
		}
	}
	return "eq", v
}

// datePred compares the resource range [lo, hi] (columns) with the parameter range.
func datePred(key, lo, hi, v string, now time.Time) (frag, error) {
	prefix, val := splitPrefix(unescape(v))
	pl, ph, ok := ParseDateRange(val)
	if !ok {
		return frag{}, badParam(key, "%q is not a valid date", val)
	}
	switch prefix {
	case "eq":
		return frag{"(" + lo + " >= ? AND " + hi + " <= ?)", []any{pl, ph}}, nil
	case "ne":
		return frag{"(" + lo + " < ? OR " + hi + " > ?)", []any{pl, ph}}, nil
	case "gt":
		return frag{hi + " > ?", []any{ph}}, nil
	case "lt":
		return frag{lo + " < ?", []any{pl}}, nil
	case "ge":
		return frag{hi + " >= ?", []any{pl}}, nil
	case "le":
		return frag{lo + " <= ?", []any{ph}}, nil
	case "sa":
		return frag{lo + " > ?", []any{ph}}, nil
	case "eb":
		return frag{hi + " < ?", []any{pl}}, nil
	case "ap":
		// Approximately: the parameter range widened by 10 % of its distance from now
		// (at least a day), intersecting the resource range.
		gap := math.Abs(float64(now.UnixMicro() - pl))
		w := int64(gap * 0.1)
		if w < int64(24*time.Hour/time.Microsecond) {
			w = int64(24 * time.Hour / time.Microsecond)
		}
		return frag{"(" + lo + " <= ? AND " + hi + " >= ?)", []any{ph + w, pl - w}}, nil
	}
	return frag{}, badParam(key, "unknown prefix %q", prefix)
}

// orderedPred compares a value column (with the parameter's implicit range [pl, ph) and
// value pv) by prefix; number and quantity share it.
func orderedPred(col, prefix string, pv, pl, ph float64) frag {
	switch prefix {
	case "ne":
		return frag{"(" + col + " < ? OR " + col + " >= ?)", []any{pl, ph}}
	case "gt", "sa":
		return frag{col + " > ?", []any{pv}}
	case "lt", "eb":
		return frag{col + " < ?", []any{pv}}
	case "ge":
		return frag{col + " >= ?", []any{pv}}
	case "le":
		return frag{col + " <= ?", []any{pv}}
	case "ap":
		d := math.Abs(pv) * 0.1
		return frag{"(" + col + " >= ? AND " + col + " <= ?)", []any{pv - d, pv + d}}
	}
	return frag{"(" + col + " >= ? AND " + col + " < ?)", []any{pl, ph}}
}

func numberPred(i, key, v string) (frag, error) {
	prefix, val := splitPrefix(unescape(v))
	pv, pl, ph, err := NumberRange(val)
	if err != nil {
		return frag{}, badParam(key, "%q is not a number", val)
	}
	return orderedPred(i+".value", prefix, pv, pl, ph), nil
}

func quantityPred(i, key, v string) (frag, error) {
	parts := splitEscaped(v, '|')
	if len(parts) != 1 && len(parts) != 3 {
		return frag{}, badParam(key, "a quantity is [prefix]number[|system|code]")
	}
	prefix, val := splitPrefix(unescape(parts[0]))
	pv, pl, ph, err := NumberRange(val)
	if err != nil {
		return frag{}, badParam(key, "%q is not a number", val)
	}
	if len(parts) == 1 {
		return orderedPred(i+".value", prefix, pv, pl, ph), nil
	}
	system, code := unescape(parts[1]), unescape(parts[2])
	if code != "" && (system == "" || system == UCUMSystem) {
		if c, ok := CanonicalUnit(code); ok {
			f := orderedPred(i+".cvalue", prefix, c.Convert(pv), c.Convert(pl), c.Convert(ph))
			return frag{"(" + i + ".ccode = ? AND " + f.sql + ")", append([]any{c.Code}, f.args...)}, nil
		}
	}
	fs := []frag{orderedPred(i+".value", prefix, pv, pl, ph)}
	if system != "" {
		fs = append(fs, frag{i + ".system = ?", []any{system}})
	}
	if code != "" {
		if system != "" {
			fs = append(fs, frag{i + ".code = ?", []any{code}})
		} else {
			fs = append(fs, frag{"(" + i + ".code = ? OR " + i + ".unit = ?)", []any{code, code}})
		}
	}
	f := joinFrags(" AND ", fs)
	return frag{"(" + f.sql + ")", f.args}, nil
}

func (b *qb) compositeCond(a, typ, key string, p *searchParam, mod, value string) (frag, error) {
	if mod != "" {
		return frag{}, badParam(key, "modifier :%s is not allowed on a composite parameter", mod)
	}
	aliases := make([]string, len(p.comps))
	for k := range p.comps {
		aliases[k] = b.alias("k")
	}
	var alts []frag
	for _, v := range splitValues(value) {
		parts := splitEscaped(v, '$')
		if len(parts) != len(p.comps) {
			return frag{}, badParam(key, "a value of %s has %d components separated by $", p.code, len(p.comps))
		}
		var preds []frag
		for k, c := range p.comps {
			ia := aliases[k]
			var f frag
			var err error
			switch c.typ {
			case ParamToken:
				f, err = tokenPred(ia, key, "", parts[k])
			case ParamString:
				f, err = stringPred(ia, key, "", parts[k])
			case ParamReference:
				f, err = b.referencePred(ia, key, &searchParam{}, "", parts[k])
			case ParamDate:
				f, err = datePred(key, ia+".low", ia+".high", parts[k], b.now)
			case ParamNumber:
				f, err = numberPred(ia, key, parts[k])
			case ParamQuantity:
				f, err = quantityPred(ia, key, parts[k])
			case ParamURI:
				f, err = uriPred(ia, key, "", parts[k])
			default:
				err = unsupported(key, "composite component type %s is not supported", c.typ)
			}
			if err != nil {
				return frag{}, err
			}
			preds = append(preds, f)
		}
		alts = append(alts, joinFrags(" AND ", preds))
	}
	c0 := aliases[0]
	var sb strings.Builder
	var args []any
	sb.WriteString("FROM " + tableOf(p.comps[0].typ) + " " + c0)
	for k := 1; k < len(p.comps); k++ {
		ck := aliases[k]
		sb.WriteString(" JOIN " + tableOf(p.comps[k].typ) + " " + ck + " ON " + ck + ".rid = " + c0 + ".rid AND " + ck + ".grp = " + c0 + ".grp AND " + ck + ".param = ?")
		args = append(args, p.code+"$"+strconv.Itoa(k))
	}
	sb.WriteString(" WHERE ")
	if typ != "" {
		sb.WriteString(c0 + ".type = ? AND ")
		args = append(args, typ)
	}
	sb.WriteString(c0 + ".param = ? AND " + c0 + ".grp > 0")
	args = append(args, p.code+"$0")
	or := joinFrags(" OR ", alts)
	sb.WriteString(" AND " + or.sql)
	args = append(args, or.args...)
	return b.ridIn(a, false, c0+".rid", sb.String(), args), nil
}

// compartment restricts a search to resources of a patient compartment.
func (b *qb) compartment(c *CompartmentRef, typ string) (frag, error) {
	if c.Type != "Patient" {
		return frag{}, unsupported("", "compartment %s is not supported (only Patient)", c.Type)
	}
	if typ == "" {
		f := patientCompartmentCond("r", c.ID, nil)
		return f, nil
	}
	params := patientCompartmentParams()[typ]
	var fs []frag
	if typ == "Patient" {
		fs = append(fs, frag{"r.id = ?", []any{c.ID}})
	}
	if len(params) > 0 {
		fs = append(fs, compartmentRefs("r", typ, params, c.ID))
	}
	if len(fs) == 0 {
		return frag{}, badParam("", "%s is not in the Patient compartment", typ)
	}
	return joinFrags(" OR ", fs), nil
}

func compartmentRefs(a, typ string, params []string, patientID string) frag {
	var refParams []string
	for _, p := range params {
		if p != "{def}" {
			refParams = append(refParams, p)
		}
	}
	if len(refParams) == 0 {
		return frag{"1 = 0", nil}
	}
	pl := inList("cp.param", refParams)
	return frag{a + ".rid IN (SELECT cp.rid FROM idx_reference cp WHERE cp.type = ? AND " + pl.sql + " AND cp.target_type = 'Patient' AND cp.target_id = ?)",
		append(append([]any{typ}, pl.args...), patientID)}
}

// patientCompartmentCond matches the patient itself and every resource in its
// compartment, optionally only of the given types.
func patientCompartmentCond(a, patientID string, types []string) frag {
	comp := patientCompartmentParams()
	ctypes := make([]string, 0, len(comp))
	for t := range comp {
		if len(types) == 0 || contains(types, t) {
			ctypes = append(ctypes, t)
		}
	}
	sort.Strings(ctypes)
	var alts []frag
	if len(types) == 0 || contains(types, "Patient") {
		alts = append(alts, frag{"(" + a + ".type = 'Patient' AND " + a + ".id = ?)", []any{patientID}})
	}
	var byType []frag
	for _, t := range ctypes {
		var refParams []string
		for _, p := range comp[t] {
			if p != "{def}" {
				refParams = append(refParams, p)
			}
		}
		if len(refParams) == 0 {
			continue
		}
		pl := inList("ep.param", refParams)
		byType = append(byType, frag{"(ep.type = ? AND " + pl.sql + ")", append([]any{t}, pl.args...)})
	}
	if len(byType) > 0 {
		or := joinFrags(" OR ", byType)
		alts = append(alts, frag{a + ".rid IN (SELECT ep.rid FROM idx_reference ep WHERE ep.target_type = 'Patient' AND ep.target_id = ? AND " + or.sql + ")",
			append([]any{patientID}, or.args...)})
	}
	if len(alts) == 0 {
		return frag{"1 = 0", nil}
	}
	return joinFrags(" OR ", alts)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sortKey parses one _sort key.
func (b *qb) sortKey(typ, k string) (sortKey, error) {
	desc := strings.HasPrefix(k, "-")
	name := strings.TrimPrefix(k, "-")
	sk := sortKey{name: name, desc: desc}
	switch name {
	case "":
		return sk, badParam("_sort", "empty sort key")
	case "_id":
		sk.kind, sk.expr = 's', frag{"r.id", nil}
		return sk, nil
	case "_lastUpdated":
		sk.kind, sk.expr = 'i', frag{"r.last_updated", nil}
		return sk, nil
	}
	if _, ok := b.snap.virtualOf(typ, name); ok {
		return sk, unsupported("_sort", "sorting by %s is not supported", name)
	}
	p := b.lookupParam(typ, name)
	if p == nil {
		return sk, badParam("_sort", "unknown search parameter %q", name)
	}
	agg := "MIN"
	if desc {
		agg = "MAX"
	}
	var col, table string
	switch p.typ {
	case ParamDate:
		table, sk.kind, sk.dateParam = "idx_date", 'i', name
		col = "low"
		if desc {
			col = "high"
		}
	case ParamString:
		table, col, sk.kind = "idx_string", "norm", 's'
	case ParamToken:
		table, col, sk.kind = "idx_token", "code", 's'
	case ParamReference:
		table, col, sk.kind = "idx_reference", "target_id", 's'
	case ParamURI:
		table, col, sk.kind = "idx_uri", "uri", 's'
	case ParamNumber:
		table, col, sk.kind = "idx_number", "value", 'f'
	case ParamQuantity:
		table, col, sk.kind = "idx_quantity", "value", 'f'
	default:
		return sk, unsupported("_sort", "sorting by a %s parameter is not supported", p.typ)
	}
	sub := "(SELECT " + agg + "(s." + col + ") FROM " + table + " s WHERE s.rid = r.rid AND s.param = ?)"
	// Missing values sort last in both directions for numbers and dates; for text they
	// are empty strings.
	var sentinel any
	switch sk.kind {
	case 'i':
		sentinel = DateMax
		if desc {
			sentinel = DateMin
		}
	case 'f':
		sentinel = math.MaxFloat64
		if desc {
			sentinel = -math.MaxFloat64
		}
	default:
		sentinel = ""
	}
	sk.expr = frag{"COALESCE(" + sub + ", ?)", []any{name, sentinel}}
	return sk, nil
}

// pageRow is one fetched match with its row id.
type pageRow struct {
	rid int64
	res *Resource
}

func (s *Store) count(ctx context.Context, q queryer, where frag, plan *searchPlan) (int, error) {
	var n int
	sqlText, args := "SELECT COUNT(*) FROM resource r WHERE "+where.sql, where.args
	if f, ok := indexOnlyCount(plan); ok {
		sqlText, args = f.sql, f.args
	}
	if err := q.QueryRowContext(ctx, s.d.rebind(sqlText), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("fhirstore: search count: %w", err)
	}
	return n, nil
}

// page runs the page query: matches after the cursor in sort order, one more than the
// page size (to know whether a next page exists).
func (s *Store) page(ctx context.Context, q queryer, where frag, plan *searchPlan, after []string, afterRID int64) ([]pageRow, [][]string, error) {
	if s.orderedByDate(plan) {
		return s.pageByDate(ctx, q, where, plan, after, afterRID)
	}
	if len(plan.sorts) == 0 && s.d.name() == "postgres" {
		if sqlText, args, ok := pageIndexOnly(plan, afterRID); ok {
			return s.pageRows(ctx, q, plan, sqlText, args)
		}
	}
	sqlText, args, err := pageSQL(where, plan, after, afterRID)
	if err != nil {
		return nil, nil, err
	}
	return s.pageRows(ctx, q, plan, sqlText, args)
}

// pageRows runs a page query whose columns are rid, type, id, version, last_updated, body
// and the sort keys, and returns the rows with their keys rendered for the cursor.
func (s *Store) pageRows(ctx context.Context, q queryer, plan *searchPlan, sqlText string, args []any) ([]pageRow, [][]string, error) {
	rows, err := q.QueryContext(ctx, s.d.rebind(sqlText), args...)
	if err != nil {
		return nil, nil, fmt.Errorf("fhirstore: search: %w", err)
	}
	defer rows.Close()
	var out []pageRow
	var keys [][]string
	for rows.Next() {
		r := &Resource{}
		var rid, lu int64
		var body string
		dest := []any{&rid, &r.Type, &r.ID, &r.Version, &lu, &body}
		kv := make([]any, len(plan.sorts))
		for k := range kv {
			dest = append(dest, &kv[k])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, fmt.Errorf("fhirstore: search scan: %w", err)
		}
		r.LastUpdated = time.UnixMicro(lu).UTC()
		r.Body = []byte(body)
		out = append(out, pageRow{rid: rid, res: r})
		ks := make([]string, len(kv))
		for k, v := range kv {
			ks[k] = keyString(plan.sorts[k].kind, v)
		}
		keys = append(keys, ks)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("fhirstore: search: %w", err)
	}
	return out, keys, nil
}

// keyString renders a scanned sort key losslessly.
func keyString(kind byte, v any) string {
	switch x := v.(type) {
	case int64:
		if kind == 'f' {
			return strconv.FormatFloat(float64(x), 'g', -1, 64)
		}
		return strconv.FormatInt(x, 10)
	case float64:
		if kind == 'i' {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []byte:
		return string(x)
	case string:
		return x
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func keyArg(kind byte, s string) (any, error) {
	switch kind {
	case 'i':
		return strconv.ParseInt(s, 10, 64)
	case 'f':
		return strconv.ParseFloat(s, 64)
	}
	return s, nil
}

// keysetCond selects the rows after (keys, rid) in the sort order.
func keysetCond(sorts []sortKey, keys []string, rid int64) (frag, error) {
	vals := make([]any, len(keys))
	for k, s := range keys {
		v, err := keyArg(sorts[k].kind, s)
		if err != nil {
			return frag{}, badParam("", "invalid page cursor")
		}
		vals[k] = v
	}
	// Built from the innermost (rid) outwards: k0 op v0 OR (k0 = v0 AND (...)).
	f := frag{"q.rid > ?", []any{rid}}
	for k := len(sorts) - 1; k >= 0; k-- {
		col := "q.k" + strconv.Itoa(k)
		op := " > ?"
		if sorts[k].desc {
			op = " < ?"
		}
		f = frag{"(" + col + op + " OR (" + col + " = ? AND " + f.sql + "))", append([]any{vals[k], vals[k]}, f.args...)}
	}
	return f, nil
}

type cursorData struct {
	H uint64   `json:"h"`
	K []string `json:"k,omitempty"`
	R int64    `json:"r"`
}

func encodeCursor(plan *searchPlan, keys []string, rid int64) string {
	b, _ := json.Marshal(cursorData{H: plan.hash, K: keys, R: rid})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(c string, plan *searchPlan) ([]string, int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, 0, badParam("", "invalid page cursor")
	}
	var cd cursorData
	if err := json.Unmarshal(b, &cd); err != nil || cd.R <= 0 {
		return nil, 0, badParam("", "invalid page cursor")
	}
	if cd.H != plan.hash || len(cd.K) != len(plan.sorts) {
		return nil, 0, badParam("", "the page cursor belongs to another search")
	}
	if cd.K == nil {
		cd.K = []string{}
	}
	return cd.K, cd.R, nil
}

// includeSpec parses Type:param[:target] or *.
func (b *qb) includeSpec(rev, iterate bool, key, v string) (includeSpec, error) {
	spec := includeSpec{rev: rev, iterate: iterate}
	if v == "*" {
		spec.srcType, spec.param = "*", "*"
		return spec, nil
	}
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return spec, badParam(key, "%q: want Type:parameter[:targetType]", v)
	}
	spec.srcType, spec.param = parts[0], parts[1]
	if len(parts) == 3 {
		spec.target = parts[2]
		if !b.snap.types[spec.target] {
			return spec, badParam(key, "unknown target type %q", spec.target)
		}
	}
	if !b.snap.types[spec.srcType] {
		return spec, badParam(key, "unknown resource type %q", spec.srcType)
	}
	if spec.param != "*" {
		p := b.snap.lookup(spec.srcType, spec.param)
		if p == nil || p.typ != ParamReference {
			return spec, badParam(key, "%s has no reference parameter %q", spec.srcType, spec.param)
		}
	}
	return spec, nil
}

// includes resolves _include and _revinclude for a page, then the :iterate ones on what
// was added until nothing new appears.
func (s *Store) includes(ctx context.Context, q queryer, specs []includeSpec, matches []pageRow) ([]*Resource, error) {
	seen := map[string]bool{}
	for _, m := range matches {
		seen[m.res.Type+"/"+m.res.ID] = true
	}
	var out []*Resource
	frontier := matches
	for round := 0; round < maxChainDepth && len(frontier) > 0 && len(out) < maxIncluded; round++ {
		var added []pageRow
		for _, spec := range specs {
			if round > 0 && !spec.iterate {
				continue
			}
			var found []pageRow
			var err error
			if spec.rev {
				found, err = s.revInclude(ctx, q, spec, frontier)
			} else {
				found, err = s.forwardInclude(ctx, q, spec, frontier)
			}
			if err != nil {
				return nil, err
			}
			for _, f := range found {
				k := f.res.Type + "/" + f.res.ID
				if seen[k] || len(out) >= maxIncluded {
					continue
				}
				seen[k] = true
				out = append(out, f.res)
				added = append(added, f)
			}
		}
		frontier = added
	}
	return out, nil
}

func (s *Store) forwardInclude(ctx context.Context, q queryer, spec includeSpec, from []pageRow) ([]pageRow, error) {
	var rids []any
	for _, f := range from {
		if spec.srcType == "*" || f.res.Type == spec.srcType {
			rids = append(rids, f.rid)
		}
	}
	if len(rids) == 0 {
		return nil, nil
	}
	sqlText := "SELECT DISTINCT t.rid, t.type, t.id, t.version, t.last_updated, t.body FROM idx_reference ref JOIN resource t ON t.type = ref.target_type AND t.id = ref.target_id WHERE ref.rid IN (" +
		placeholders(len(rids)) + ") AND t.deleted = 0"
	args := rids
	if spec.param != "*" {
		sqlText += " AND ref.param = ?"
		args = append(args, spec.param)
	}
	if spec.target != "" {
		sqlText += " AND ref.target_type = ?"
		args = append(args, spec.target)
	}
	sqlText += " ORDER BY t.rid LIMIT ?"
	args = append(args, maxIncluded)
	return s.fetch(ctx, q, sqlText, args)
}

func (s *Store) revInclude(ctx context.Context, q queryer, spec includeSpec, from []pageRow) ([]pageRow, error) {
	var alts []string
	var args []any
	for _, f := range from {
		if spec.target != "" && f.res.Type != spec.target {
			continue
		}
		alts = append(alts, "(ref.target_type = ? AND ref.target_id = ?)")
		args = append(args, f.res.Type, f.res.ID)
	}
	if len(alts) == 0 {
		return nil, nil
	}
	sqlText := "SELECT DISTINCT t.rid, t.type, t.id, t.version, t.last_updated, t.body FROM idx_reference ref JOIN resource t ON t.rid = ref.rid WHERE (" +
		strings.Join(alts, " OR ") + ") AND t.deleted = 0"
	if spec.srcType != "*" {
		sqlText += " AND ref.type = ?"
		args = append(args, spec.srcType)
	}
	if spec.param != "*" {
		sqlText += " AND ref.param = ?"
		args = append(args, spec.param)
	}
	sqlText += " ORDER BY t.rid LIMIT ?"
	args = append(args, maxIncluded)
	return s.fetch(ctx, q, sqlText, args)
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// fetch runs a query selecting rid, type, id, version, last_updated, body.
func (s *Store) fetch(ctx context.Context, q queryer, sqlText string, args []any) ([]pageRow, error) {
	rows, err := q.QueryContext(ctx, s.d.rebind(sqlText), args...)
	if err != nil {
		return nil, fmt.Errorf("fhirstore: search: %w", err)
	}
	return scanPageRows(rows)
}

// scanPageRows reads and closes rows of rid, type, id, version, last_updated, body.
func scanPageRows(rows *sql.Rows) ([]pageRow, error) {
	defer rows.Close()
	var out []pageRow
	for rows.Next() {
		r := &Resource{}
		var rid, lu int64
		var body string
		if err := rows.Scan(&rid, &r.Type, &r.ID, &r.Version, &lu, &body); err != nil {
			return nil, fmt.Errorf("fhirstore: search scan: %w", err)
		}
		r.LastUpdated = time.UnixMicro(lu).UTC()
		r.Body = []byte(body)
		out = append(out, pageRow{rid: rid, res: r})
	}
	return out, rows.Err()
}

// pageSQL builds the page query: matches after the cursor in sort order, one more than
// the page size (to know whether a next page exists).
func pageSQL(where frag, plan *searchPlan, after []string, afterRID int64) (string, []any, error) {
	var sqlText string
	var args []any
	limit := plan.count + 1
	if len(plan.sorts) == 0 {
		sqlText = "SELECT r.rid, r.type, r.id, r.version, r.last_updated, r.body FROM resource r WHERE " + where.sql
		args = append(args, where.args...)
		if afterRID > 0 {
			sqlText += " AND r.rid > ?"
			args = append(args, afterRID)
		}
		sqlText += " ORDER BY r.rid LIMIT ?"
		args = append(args, limit)
	} else {
		var cols []string
		for k, sk := range plan.sorts {
			cols = append(cols, sk.expr.sql+" AS k"+strconv.Itoa(k))
			args = append(args, sk.expr.args...)
		}
		sqlText = "SELECT q.rid, q.type, q.id, q.version, q.last_updated, q.body"
		for k := range plan.sorts {
			sqlText += ", q.k" + strconv.Itoa(k)
		}
		sqlText += " FROM (SELECT r.rid, r.type, r.id, r.version, r.last_updated, r.body, " + strings.Join(cols, ", ") + " FROM resource r WHERE " + where.sql + ") q"
		args = append(args, where.args...)
		if after != nil {
			f, err := keysetCond(plan.sorts, after, afterRID)
			if err != nil {
				return "", nil, err
			}
			sqlText += " WHERE " + f.sql
			args = append(args, f.args...)
		}
		var order []string
		for k, sk := range plan.sorts {
			o := "q.k" + strconv.Itoa(k)
			if sk.desc {
				o += " DESC"
			}
			order = append(order, o)
		}
		sqlText += " ORDER BY " + strings.Join(order, ", ") + ", q.rid LIMIT ?"
		args = append(args, limit)
	}
	return sqlText, args, nil
}
