package fhirstore

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/vigil-health/vigil/fhirpath"
)

//go:embed spec/search-parameters.json
var searchParametersJSON []byte

//go:embed spec/compartmentdefinition-patient.json
var patientCompartmentJSON []byte

// Search parameter types (SearchParameter.type).
const (
	ParamNumber    = "number"
	ParamDate      = "date"
	ParamString    = "string"
	ParamToken     = "token"
	ParamReference = "reference"
	ParamComposite = "composite"
	ParamQuantity  = "quantity"
	ParamURI       = "uri"
	ParamSpecial   = "special"
)

// SearchParamInfo describes one search parameter of a resource type, for the
// CapabilityStatement.
type SearchParamInfo struct {
	// Name is the code used in URLs ("patient", "_lastUpdated").
	Name string
	// Type is the SearchParameter.type ("token", "reference" ...).
	Type string
	// URL is the canonical URL of the definition.
	URL string
	// Doc is the definition's description.
	Doc string
	// Targets lists the resource types a reference parameter may point to.
	Targets []string
}

// searchParam is one search parameter as it applies to one resource type: the FHIRPath
// expression is narrowed to the branches of that type, so a multi-base expression
// (`AllergyIntolerance.code | Condition.code`) only yields values of the indexed type.
type searchParam struct {
	code    string
	typ     string
	url     string
	doc     string
	expr    *fhirpath.Expression // nil: not indexable (e.g. _text, _content)
	roots   []string             // top-level elements the expression reads ("" = unknown: always evaluate)
	targets []string
	comps   []searchComponent
}

// searchComponent is one component of a composite parameter: the type of the parameter
// its definition points to, and its expression relative to the composite's element.
type searchComponent struct {
	typ  string
	expr *fhirpath.Expression
}

// rawSearchParam is the subset of a SearchParameter resource the registry reads.
type rawSearchParam struct {
	ResourceType string   `json:"resourceType"`
	URL          string   `json:"url"`
	Code         string   `json:"code"`
	Status       string   `json:"status"`
	Base         []string `json:"base"`
	Type         string   `json:"type"`
	Expression   string   `json:"expression"`
	Description  string   `json:"description"`
	Target       []string `json:"target"`
	Component    []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

// Registry holds the search parameters known to a store: the official R4 definitions and
// the custom SearchParameter resources registered since. It is safe for concurrent use;
// registration replaces an immutable snapshot.
type Registry struct {
	mu   sync.RWMutex
	snap *registrySnapshot
}

type registrySnapshot struct {
	raw    map[string]*rawSearchParam         // by URL
	byType map[string]map[string]*searchParam // type -> code -> param ("Resource" for common ones)
	types  map[string]bool                    // every resource type named by a definition
	// sorted caches params(typ); a snapshot never changes once published.
	sorted sync.Map // string -> []*searchParam
	// virtual lists, per type, the parameters answered from other parameters' rows
	// instead of rows of their own (see observationVirtual).
	virtual map[string]map[string]virtualParam
}

// virtualParam is a parameter equivalent to a combination of others: any of them (or),
// or, for a composite over the resource itself, each component on its own parameter
// (and).
type virtualParam struct {
	and   bool
	parts []string
}

// observationVirtual are Observation parameters that duplicate others. The combo-*
// parameters cover the Observation and its components, so they match when the plain or
// the component-* parameter matches; the code-value-* composites pair values of the
// Observation itself, of which there is one, so they are the plain parameters together.
// Not indexing them saves nine of the twenty-two index rows of a device heart rate.
var observationVirtual = map[string]virtualParam{
	"combo-code":                {parts: []string{"code", "component-code"}},
	"combo-data-absent-reason":  {parts: []string{"data-absent-reason", "component-data-absent-reason"}},
	"combo-value-concept":       {parts: []string{"value-concept", "component-value-concept"}},
	"combo-value-quantity":      {parts: []string{"value-quantity", "component-value-quantity"}},
	"combo-code-value-concept":  {parts: []string{"code-value-concept", "component-code-value-concept"}},
	"combo-code-value-quantity": {parts: []string{"code-value-quantity", "component-code-value-quantity"}},
	"code-value-concept":        {and: true, parts: []string{"code", "value-concept"}},
	"code-value-date":           {and: true, parts: []string{"code", "value-date"}},
	"code-value-quantity":       {and: true, parts: []string{"code", "value-quantity"}},
}

var (
	baseRegistryOnce sync.Once
	baseRaw          []*rawSearchParam
	baseRawErr       error
)

func loadBaseParams() ([]*rawSearchParam, error) {
	baseRegistryOnce.Do(func() {
		var b struct {
			Entry []struct {
				Resource *rawSearchParam `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(searchParametersJSON, &b); err != nil {
			baseRawErr = fmt.Errorf("fhirstore: search parameters: %w", err)
			return
		}
		for _, e := range b.Entry {
			if e.Resource != nil {
				baseRaw = append(baseRaw, e.Resource)
			}
		}
	})
	return baseRaw, baseRawErr
}

var (
	baseSnapOnce sync.Once
	baseSnap     *registrySnapshot
	baseSnapErr  error
)

// NewRegistry returns a registry holding the official R4 search parameters. The compiled
// definitions are shared by every registry (they are immutable); registrations are not.
func NewRegistry() (*Registry, error) {
	baseSnapOnce.Do(func() { baseSnap, baseSnapErr = buildBaseSnapshot() })
	if baseSnapErr != nil {
		return nil, baseSnapErr
	}
	return &Registry{snap: baseSnap}, nil
}

func buildBaseSnapshot() (*registrySnapshot, error) {
	raws, err := loadBaseParams()
	if err != nil {
		return nil, err
	}
	snap := &registrySnapshot{raw: map[string]*rawSearchParam{}, byType: map[string]map[string]*searchParam{}, types: map[string]bool{}}
	for _, r := range raws {
		snap.raw[r.URL] = r
		for _, b := range r.Base {
			snap.types[b] = true
		}
		for _, t := range r.Target {
			snap.types[t] = true
		}
	}
	for _, r := range raws {
		if err := snap.add(r); err != nil {
			return nil, err
		}
	}
	snap.virtual = map[string]map[string]virtualParam{"Observation": observationVirtual}
	return snap, nil
}

func (s *registrySnapshot) clone() *registrySnapshot {
	n := &registrySnapshot{raw: make(map[string]*rawSearchParam, len(s.raw)), byType: make(map[string]map[string]*searchParam, len(s.byType)), types: s.types,
		virtual: map[string]map[string]virtualParam{}}
	for t, m := range s.virtual {
		mm := make(map[string]virtualParam, len(m))
		for k, v := range m {
			mm[k] = v
		}
		n.virtual[t] = mm
	}
	for k, v := range s.raw {
		n.raw[k] = v
	}
	for t, m := range s.byType {
		mm := make(map[string]*searchParam, len(m))
		for k, v := range m {
			mm[k] = v
		}
		n.byType[t] = mm
	}
	return n
}

// add compiles r for each of its bases.
func (s *registrySnapshot) add(r *rawSearchParam) error {
	for _, base := range r.Base {
		key := base
		if base == "DomainResource" {
			key = "Resource"
		}
		p := &searchParam{code: r.Code, typ: r.Type, url: r.URL, doc: r.Description, targets: r.Target}
		if r.Expression != "" && r.Type != ParamSpecial {
			text := narrowExpression(r.Expression, base)
			if text == "" {
				continue
			}
			e, err := fhirpath.Compile(text)
			if err != nil {
				return fmt.Errorf("fhirstore: search parameter %s (%s): %w", r.Code, r.URL, err)
			}
			p.expr = e
			p.roots = expressionRoots(text, base)
		}
		if r.Type == ParamComposite {
			for _, c := range r.Component {
				def := s.raw[c.Definition]
				if def == nil {
					return fmt.Errorf("fhirstore: composite %s: unknown component %s", r.URL, c.Definition)
				}
				e, err := fhirpath.Compile(c.Expression)
				if err != nil {
					return fmt.Errorf("fhirstore: composite %s component %s: %w", r.URL, c.Definition, err)
				}
				p.comps = append(p.comps, searchComponent{typ: def.Type, expr: e})
			}
		}
		m := s.byType[key]
		if m == nil {
			m = map[string]*searchParam{}
			s.byType[key] = m
		}
		m[r.Code] = p
		// A registered definition replaces a virtual one: it gets rows of its own.
		delete(s.virtual[key], r.Code)
	}
	return nil
}

// narrowExpression keeps the union branches of expr that apply to base: those whose first
// identifier is base, Resource or DomainResource (or that do not start with a type name).
func narrowExpression(expr, base string) string {
	var keep []string
	for _, br := range splitUnion(expr) {
		first := firstIdent(br)
		if first == base || first == "Resource" || first == "DomainResource" || first == "" || !isTypeName(first) {
			keep = append(keep, strings.TrimSpace(br))
		}
	}
	return strings.Join(keep, " | ")
}

func isTypeName(s string) bool { return s != "" && s[0] >= 'A' && s[0] <= 'Z' }

// splitUnion splits expr at top-level '|' (outside parentheses and quotes).
func splitUnion(expr string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '(' || c == '[':
			depth++
		case c == ')' || c == ']':
			depth--
		case c == '|' && depth == 0:
			out = append(out, expr[start:i])
			start = i + 1
		}
	}
	return append(out, expr[start:])
}

// firstIdent returns the first identifier of a branch, skipping opening parentheses.
func firstIdent(br string) string {
	br = strings.TrimLeft(br, " \t\n(")
	i := 0
	for i < len(br) && (br[i] == '_' || br[i] >= 'a' && br[i] <= 'z' || br[i] >= 'A' && br[i] <= 'Z' || br[i] >= '0' && br[i] <= '9') {
		i++
	}
	return br[:i]
}

// expressionRoots returns the top-level element names the branches read (the identifier
// after "Type."), so indexing can skip expressions whose elements are absent. An empty
// result means "unknown: always evaluate".
func expressionRoots(expr, base string) []string {
	var roots []string
	for _, br := range splitUnion(expr) {
		br = strings.TrimLeft(br, " \t\n(")
		first := firstIdent(br)
		rest := br[len(first):]
		if !strings.HasPrefix(rest, ".") || !isTypeName(first) {
			return nil
		}
		el := firstIdent(rest[1:])
		if el == "" {
			return nil
		}
		roots = append(roots, el)
	}
	return roots
}

// present reports whether any root element of p is in res (choice elements match by
// prefix: value -> valueQuantity).
func (p *searchParam) present(res map[string]any) bool {
	if len(p.roots) == 0 {
		return true
	}
	for _, r := range p.roots {
		if _, ok := res[r]; ok {
			return true
		}
		if _, ok := res["_"+r]; ok {
			return true
		}
		for k := range res {
			if len(k) > len(r) && strings.HasPrefix(k, r) && k[len(r)] >= 'A' && k[len(r)] <= 'Z' {
				return true
			}
		}
	}
	return false
}

func (r *Registry) snapshot() *registrySnapshot {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.snap
}

// virtualOf returns the virtual definition of code for typ, if it is one.
func (s *registrySnapshot) virtualOf(typ, code string) (virtualParam, bool) {
	v, ok := s.virtual[typ][code]
	return v, ok
}

// lookup returns the parameter code of resource type typ, or nil.
func (s *registrySnapshot) lookup(typ, code string) *searchParam {
	if p := s.byType[typ][code]; p != nil {
		return p
	}
	return s.byType["Resource"][code]
}

// params returns every parameter that applies to typ, in code order.
func (s *registrySnapshot) params(typ string) []*searchParam {
	if v, ok := s.sorted.Load(typ); ok {
		return v.([]*searchParam)
	}
	out := s.buildParams(typ)
	s.sorted.Store(typ, out)
	return out
}

func (s *registrySnapshot) buildParams(typ string) []*searchParam {
	seen := map[string]*searchParam{}
	for k, v := range s.byType["Resource"] {
		seen[k] = v
	}
	if typ != "Resource" {
		for k, v := range s.byType[typ] {
			seen[k] = v
		}
	}
	out := make([]*searchParam, 0, len(seen))
	for _, v := range seen {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].code < out[j].code })
	return out
}

// Register adds or replaces a custom search parameter given as a decoded SearchParameter
// resource. Only status=active parameters are registered (others are ignored and a nil
// error returned). Resources written afterwards are indexed with it; Reindex brings
// existing resources up to date.
func (r *Registry) Register(sp map[string]any) error {
	b, err := json.Marshal(sp)
	if err != nil {
		return fmt.Errorf("fhirstore: register search parameter: %w", err)
	}
	var raw rawSearchParam
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("fhirstore: register search parameter: %w", err)
	}
	if raw.ResourceType != "SearchParameter" {
		return fmt.Errorf("fhirstore: register search parameter: resourceType %q: %w", raw.ResourceType, ErrInvalid)
	}
	if raw.Status != "active" {
		return nil
	}
	if raw.Code == "" || len(raw.Base) == 0 || raw.Type == "" {
		return fmt.Errorf("fhirstore: register search parameter: code, base and type are required: %w", ErrInvalid)
	}
	switch raw.Type {
	case ParamNumber, ParamDate, ParamString, ParamToken, ParamReference, ParamComposite, ParamQuantity, ParamURI:
	default:
		return fmt.Errorf("fhirstore: register search parameter %s: type %q is not supported: %w", raw.Code, raw.Type, ErrInvalid)
	}
	if raw.Type != ParamComposite && raw.Expression == "" {
		return fmt.Errorf("fhirstore: register search parameter %s: expression is required: %w", raw.Code, ErrInvalid)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.snap.clone()
	if raw.URL != "" {
		n.raw[raw.URL] = &raw
	}
	if err := n.add(&raw); err != nil {
		return err
	}
	r.snap = n
	return nil
}

// Unregister removes a custom search parameter registered from the SearchParameter
// resource sp (matched by url, code and base); an official definition it replaced comes
// back.
func (r *Registry) Unregister(sp map[string]any) error {
	b, err := json.Marshal(sp)
	if err != nil {
		return fmt.Errorf("fhirstore: unregister search parameter: %w", err)
	}
	var raw rawSearchParam
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("fhirstore: unregister search parameter: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.snap.clone()
	for _, base := range raw.Base {
		key := base
		if base == "DomainResource" {
			key = "Resource"
		}
		cur := n.byType[key][raw.Code]
		if cur == nil || cur.url != raw.URL {
			continue
		}
		delete(n.byType[key], raw.Code)
		if orig := baseSnap.byType[key][raw.Code]; orig != nil {
			n.byType[key][raw.Code] = orig
			if v, ok := baseSnap.virtual[key][raw.Code]; ok {
				if n.virtual[key] == nil {
					n.virtual[key] = map[string]virtualParam{}
				}
				n.virtual[key][raw.Code] = v
			}
		}
	}
	if raw.URL != "" && baseSnap.raw[raw.URL] == nil {
		delete(n.raw, raw.URL)
	}
	r.snap = n
	return nil
}

// SearchParams returns the search parameters of resource type typ (including the common
// ones: _id, _lastUpdated, _tag ...), sorted by name.
func (r *Registry) SearchParams(typ string) []SearchParamInfo {
	var out []SearchParamInfo
	for _, p := range r.snapshot().params(typ) {
		if p.expr == nil && p.code != "_id" && p.code != "_lastUpdated" {
			continue
		}
		out = append(out, SearchParamInfo{Name: p.code, Type: p.typ, URL: p.url, Doc: p.doc, Targets: p.targets})
	}
	return out
}

// ResourceTypes returns every resource type the definitions name, sorted.
func (r *Registry) ResourceTypes() []string {
	snap := r.snapshot()
	out := make([]string, 0, len(snap.types))
	for t := range snap.types {
		if t != "Resource" && t != "DomainResource" {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// compartment is the vendored Patient CompartmentDefinition: resource type -> the
// parameters that put a resource in a patient's compartment.
var (
	compartmentOnce    sync.Once
	patientCompartment map[string][]string
)

func patientCompartmentParams() map[string][]string {
	compartmentOnce.Do(func() {
		var cd struct {
			Resource []struct {
				Code  string   `json:"code"`
				Param []string `json:"param"`
			} `json:"resource"`
		}
		patientCompartment = map[string][]string{}
		if err := json.Unmarshal(patientCompartmentJSON, &cd); err != nil {
			return
		}
		for _, r := range cd.Resource {
			if len(r.Param) > 0 {
				patientCompartment[r.Code] = r.Param
			}
		}
	})
	return patientCompartment
}
