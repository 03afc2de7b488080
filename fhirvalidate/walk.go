package fhirvalidate

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// role tells the walk what an object or array means for the checks that depend on
// context (Bundle rules, narrative, contained resources).
type role uint8

const (
	roleNone           role = iota
	roleEntryArray          // <object>.entry, an array
	roleEntry               // <object>.entry[i]
	roleEntryRequest        // <object>.entry[i].request
	roleEntryResource       // <object>.entry[i].resource
	roleEntryMeta           // <object>.entry[i].resource.meta
	roleIdentifier          // <object>.identifier as a single object (Bundle.identifier)
	roleNarrative           // <object>.text as an object (DomainResource.text)
	roleContainedArray      // <object>.contained, an array
	roleContained           // <object>.contained[i]
	roleParamResource       // <object>.parameter[i].resource or <object>.part[i].resource
	roleExtension           // <object>.extension[i] or <object>.modifierExtension[i]
	roleContainedMeta       // <object>.contained[i].meta
)

// frame is one open object or array of the walk.
type frame struct {
	key   []byte // property name in the parent object; nil for array elements and the root
	index int    // index in the parent array, or -1
	array bool
	role  role

	// Objects only.
	keysStart  int    // where this object's property names start in walker.keys
	rt         []byte // resourceType, when present
	typ        []byte // the string value of "type", when present (Bundle.type)
	entryList  int    // index of this object's entry facts in walker.lists, or -1
	entry      int    // for entry roles: the entry's index in its list
	list       int    // for entry roles: the list the entry belongs to
	members    int    // properties seen so far
	extValue   bool   // an extension's value[x]
	extNested  bool   // an extension's own extensions
	hasTotal   bool
	hasStamp   bool
	identSys   bool
	identValue bool
}

// entryFacts is what the Bundle rules need to know about one entry.
type entryFacts struct {
	index                                           int
	hasRequest, hasResource, hasResponse, hasSearch bool
	method, url, fullURL, resourceType, versionID   []byte
}

// span locates a nested resource in the input, with its FHIRPath relative to the root
// resource (".contained[0]").
type span struct {
	start, end int
	rel        string
}

// walker makes one pass over a JSON document: it checks the syntax and the rules that
// google/fhir/go lacks, and it collects contained resources for separate validation.
// Element paths are rendered only when an issue is reported.
type walker struct {
	data     []byte
	pos      int
	maxDepth int

	frames []frame
	keys   [][]byte // property names of the open objects, for duplicate detection
	lists  [][]entryFacts
	nLists int

	maxIssues int // cap on recorded non-fatal issues; 0 for none
	dropped   int // issues not recorded because of the cap

	rootType  string
	fatal     bool // the document cannot be validated further
	issues    []Issue
	contained []span
	params    []span // Parameters.parameter[i].resource (and part[j].resource), innermost first
}

func newWalker(data []byte, maxDepth int) *walker {
	return &walker{data: data, maxDepth: maxDepth, frames: make([]frame, 0, 16)}
}

// errStop aborts the walk after a fatal issue has been recorded.
var errStop = fmt.Errorf("fhirvalidate: walk stopped")

// run walks the whole document.
func (w *walker) run() {
	w.skipWS()
	if w.pos >= len(w.data) {
		w.fatalIssue(CodeStructure, "the body is empty; expected a FHIR resource as a JSON object")
		return
	}
	if w.data[w.pos] != '{' {
		switch {
		case bytes.HasPrefix(w.data[w.pos:], []byte("\xEF\xBB\xBF")):
			w.fatalIssue(CodeStructure, "the body starts with a byte order mark, which JSON does not allow")
		case w.data[w.pos] == '[':
			w.fatalIssue(CodeStructure, "the body is a JSON array; expected a FHIR resource as a JSON object")
		default:
			w.fatalIssue(CodeStructure, "the body is not a JSON object; expected a FHIR resource as a JSON object")
		}
		return
	}
	w.rootType = topLevelResourceType(w.data)
	defer w.rootPaths()
	if err := w.object(nil, -1); err != nil {
		return
	}
	w.skipWS()
	if w.pos < len(w.data) {
		w.syntaxError("unexpected data after the top-level object")
		return
	}
	switch {
	case w.rootType == "":
		w.fatalIssue(CodeRequired, `the resource has no "resourceType" (a non-empty string)`)
	case !isResourceType(w.rootType):
		w.fatalIssue(CodeNotSupported, fmt.Sprintf("unknown resource type %.64q", w.rootType))
	}
}

// rootPaths gives the paths, rendered relative to the root, the root's name.
func (w *walker) rootPaths() {
	for i := range w.issues {
		for j, e := range w.issues[i].Expression {
			w.issues[i].Expression[j] = w.rootType + e
		}
		if len(w.issues[i].Expression) == 1 && w.issues[i].Expression[0] == "" {
			w.issues[i].Expression = nil
		}
	}
}

// topLevelResourceType returns the top-level "resourceType" string of a JSON object, or
// "" when there is none (or the JSON is broken; the walk reports that).
func topLevelResourceType(data []byte) string {
	s := &walker{data: data}
	s.skipWS()
	if s.pos >= len(data) || data[s.pos] != '{' {
		return ""
	}
	s.pos++
	for depth := 0; ; {
		s.skipWS()
		if s.pos >= len(data) || data[s.pos] != '"' {
			return ""
		}
		ks, ke, esc, ok := s.scanString()
		if !ok {
			return ""
		}
		s.skipWS()
		if s.pos >= len(data) || data[s.pos] != ':' {
			return ""
		}
		s.pos++
		s.skipWS()
		if !esc && string(data[ks:ke]) == "resourceType" && s.pos < len(data) && data[s.pos] == '"' {
			vs, ve, vesc, ok := s.scanString()
			if !ok {
				return ""
			}
			return string(s.unescape(vs, ve, vesc))
		}
		if !s.skipValue(&depth) {
			return ""
		}
		s.skipWS()
		if s.pos >= len(data) || data[s.pos] != ',' {
			return ""
		}
		s.pos++
	}
}

// skipValue skips one JSON value without checking it in detail.
func (w *walker) skipValue(depth *int) bool {
	if w.pos >= len(w.data) {
		return false
	}
	switch c := w.data[w.pos]; c {
	case '"':
		_, _, _, ok := w.scanString()
		return ok
	case '{', '[':
		*depth++
		if *depth > 512 {
			return false
		}
		close := byte('}')
		if c == '[' {
			close = ']'
		}
		w.pos++
		w.skipWS()
		if w.pos < len(w.data) && w.data[w.pos] == close {
			w.pos++
			*depth--
			return true
		}
		for {
			w.skipWS()
			if c == '{' {
				if w.pos >= len(w.data) || w.data[w.pos] != '"' {
					return false
				}
				if _, _, _, ok := w.scanString(); !ok {
					return false
				}
				w.skipWS()
				if w.pos >= len(w.data) || w.data[w.pos] != ':' {
					return false
				}
				w.pos++
				w.skipWS()
			}
			if !w.skipValue(depth) {
				return false
			}
			w.skipWS()
			if w.pos >= len(w.data) {
				return false
			}
			if w.data[w.pos] == ',' {
				w.pos++
				continue
			}
			if w.data[w.pos] == close {
				w.pos++
				*depth--
				return true
			}
			return false
		}
	default:
		for w.pos < len(w.data) {
			switch w.data[w.pos] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return true
			}
			w.pos++
		}
		return true
	}
}

// ---- issues and paths ----

func (w *walker) fatalIssue(code, diag string) {
	w.fatal = true
	w.issues = append(w.issues, Issue{Severity: SeverityFatal, Code: code, Diagnostics: diag})
}

func (w *walker) syntaxError(what string) error {
	w.fatalIssue(CodeStructure, fmt.Sprintf("invalid JSON at byte offset %d: %s", w.pos, what))
	return errStop
}

// full reports whether the issue cap is reached, counting the issue about to be dropped:
// a hostile body of a million empty strings must not cost a million paths.
func (w *walker) full() bool {
	if w.maxIssues > 0 && len(w.issues) >= w.maxIssues {
		w.dropped++
		return true
	}
	return false
}

// issue records a problem at the path of the innermost open frame extended by key (an
// object property) or index (an array element, when >= 0).
func (w *walker) issue(severity, code, diag string, key []byte, index int) {
	if w.full() {
		return
	}
	w.issues = append(w.issues, Issue{
		Severity:    severity,
		Code:        code,
		Diagnostics: diag,
		Expression:  []string{w.path(len(w.frames), key, index)},
	})
}

// issueAt records a problem at a path built by the caller (relative to the root).
func (w *walker) issueAt(severity, code, diag, path string) {
	if w.full() {
		return
	}
	w.issues = append(w.issues, Issue{Severity: severity, Code: code, Diagnostics: diag, Expression: []string{path}})
}

// path renders the FHIRPath of frames[:n] plus an optional last step, relative to the
// root (the root's name is added at the end of the walk).
func (w *walker) path(n int, key []byte, index int) string {
	var b strings.Builder
	for i := 1; i < n; i++ {
		writeStep(&b, w.frames[i].key, w.frames[i].index)
	}
	if key != nil || index >= 0 {
		writeStep(&b, key, index)
	}
	return b.String()
}

func writeStep(b *strings.Builder, key []byte, index int) {
	if index >= 0 {
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(index))
		b.WriteByte(']')
		return
	}
	b.WriteByte('.')
	// A primitive's extensions sit under "_name" in JSON and under "name" in FHIRPath.
	if len(key) > 1 && key[0] == '_' {
		key = key[1:]
	}
	b.Write(key)
}

// ---- the walk ----

func (w *walker) skipWS() {
	for w.pos < len(w.data) {
		switch w.data[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

// push opens a frame and returns its index.
func (w *walker) push(f frame) (int, error) {
	if len(w.frames) >= w.maxDepth {
		w.fatalIssue(CodeStructure, fmt.Sprintf("the JSON nests deeper than %d levels", w.maxDepth))
		return 0, errStop
	}
	w.frames = append(w.frames, f)
	return len(w.frames) - 1, nil
}

// value walks the value at w.pos, which is the property key of the innermost frame or, when
// index >= 0, its element index.
func (w *walker) value(key []byte, index int) error {
	if w.pos >= len(w.data) {
		return w.syntaxError("unexpected end of input")
	}
	switch c := w.data[w.pos]; {
	case c == '{':
		return w.object(key, index)
	case c == '[':
		return w.arrayValue(key, index)
	case c == '"':
		start := w.pos
		vs, ve, esc, ok := w.scanString()
		if !ok {
			w.pos = start
			return w.syntaxError("invalid string")
		}
		if ve == vs {
			w.issue(SeverityError, CodeValue, "empty string; FHIR does not allow empty values, omit the element instead", key, index)
			return nil
		}
		w.stringValue(key, index, vs, ve, esc)
		return nil
	case c == 'n':
		if !w.literal("null") {
			return w.syntaxError("invalid literal")
		}
		if index < 0 {
			w.issue(SeverityError, CodeStructure, "null is not allowed as a property value; omit the element instead", key, index)
		}
		return nil
	case c == 't':
		if !w.literal("true") {
			return w.syntaxError("invalid literal")
		}
	case c == 'f':
		if !w.literal("false") {
			return w.syntaxError("invalid literal")
		}
	case c == '-' || (c >= '0' && c <= '9'):
		if !w.number() {
			return w.syntaxError("invalid number")
		}
	default:
		return w.syntaxError("unexpected character")
	}
	if index < 0 && len(w.frames) > 0 {
		f := &w.frames[len(w.frames)-1]
		if string(key) == "total" {
			f.hasTotal = true
		}
	}
	return nil
}

func (w *walker) literal(lit string) bool {
	if len(w.data)-w.pos < len(lit) || string(w.data[w.pos:w.pos+len(lit)]) != lit {
		return false
	}
	w.pos += len(lit)
	return true
}

// number scans a JSON number.
func (w *walker) number() bool {
	d := w.data
	p := w.pos
	if p < len(d) && d[p] == '-' {
		p++
	}
	switch {
	case p < len(d) && d[p] == '0':
		p++
	case p < len(d) && d[p] >= '1' && d[p] <= '9':
		for p < len(d) && d[p] >= '0' && d[p] <= '9' {
			p++
		}
	default:
		return false
	}
	if p < len(d) && d[p] == '.' {
		p++
		if p >= len(d) || d[p] < '0' || d[p] > '9' {
			return false
		}
		for p < len(d) && d[p] >= '0' && d[p] <= '9' {
			p++
		}
	}
	if p < len(d) && (d[p] == 'e' || d[p] == 'E') {
		p++
		if p < len(d) && (d[p] == '+' || d[p] == '-') {
			p++
		}
		if p >= len(d) || d[p] < '0' || d[p] > '9' {
			return false
		}
		for p < len(d) && d[p] >= '0' && d[p] <= '9' {
			p++
		}
	}
	w.pos = p
	return true
}

// scanString scans the JSON string at w.pos and returns the bounds of its raw content and
// whether it holds escapes. It rejects control characters, bad escapes and invalid UTF-8.
func (w *walker) scanString() (start, end int, esc, ok bool) {
	d := w.data
	p := w.pos + 1
	start = p
	for p < len(d) {
		c := d[p]
		switch {
		case c == '"':
			w.pos = p + 1
			return start, p, esc, true
		case c == '\\':
			esc = true
			if p+1 >= len(d) {
				return 0, 0, false, false
			}
			switch d[p+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p += 2
			case 'u':
				if p+6 > len(d) {
					return 0, 0, false, false
				}
				for _, h := range d[p+2 : p+6] {
					if !isHex(h) {
						return 0, 0, false, false
					}
				}
				p += 6
			default:
				return 0, 0, false, false
			}
		case c < 0x20:
			return 0, 0, false, false
		case c < utf8.RuneSelf:
			p++
		default:
			r, size := utf8.DecodeRune(d[p:])
			if r == utf8.RuneError && size == 1 {
				return 0, 0, false, false
			}
			p += size
		}
	}
	return 0, 0, false, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// unescape returns the decoded content of a scanned string; without escapes it is a
// sub-slice of the input and costs nothing.
func (w *walker) unescape(start, end int, esc bool) []byte {
	if !esc {
		return w.data[start:end]
	}
	return unescapeJSON(w.data[start:end])
}

// unescapeJSON decodes the content of a JSON string already checked by scanString.
// Unpaired surrogates become U+FFFD, as in encoding/json.
func unescapeJSON(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(raw) {
			break
		}
		switch e := raw[i+1]; e {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(raw[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2 = hex4(raw[i+2:])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
			continue
		default: // '"', '\\', '/'
			out = append(out, e)
		}
		i += 2
	}
	return out
}

// hex4 decodes four hex digits (validated by scanString).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// object walks a JSON object.
func (w *walker) object(key []byte, index int) error {
	start := w.pos
	f := frame{key: key, index: index, keysStart: len(w.keys), entryList: -1, entry: -1, list: -1}
	w.objectRole(&f)
	fi, err := w.push(f)
	if err != nil {
		return err
	}
	w.pos++ // '{'
	w.skipWS()
	if w.pos < len(w.data) && w.data[w.pos] == '}' {
		w.pos++
		w.frames = w.frames[:fi]
		w.issue(SeverityError, CodeStructure, "empty object; FHIR does not allow empty elements, omit the element instead", key, index)
		w.endObject(fi, start, f)
		return nil
	}
	for {
		w.skipWS()
		if w.pos >= len(w.data) || w.data[w.pos] != '"' {
			return w.syntaxError("expected a property name")
		}
		ks, ke, esc, ok := w.scanString()
		if !ok {
			return w.syntaxError("invalid property name")
		}
		k := w.unescape(ks, ke, esc)
		w.checkKey(fi, k)
		w.skipWS()
		if w.pos >= len(w.data) || w.data[w.pos] != ':' {
			return w.syntaxError("expected ':' after a property name")
		}
		w.pos++
		w.skipWS()
		w.member(fi, k)
		if err := w.value(k, -1); err != nil {
			return err
		}
		w.skipWS()
		if w.pos >= len(w.data) {
			return w.syntaxError("unexpected end of input in an object")
		}
		if w.data[w.pos] == ',' {
			w.pos++
			continue
		}
		if w.data[w.pos] == '}' {
			w.pos++
			break
		}
		return w.syntaxError("expected ',' or '}' in an object")
	}
	f = w.frames[fi]
	w.keys = w.keys[:f.keysStart]
	w.frames = w.frames[:fi]
	w.endObject(fi, start, f)
	return nil
}

// objectRole derives the role of an object about to be opened from its parent frame.
func (w *walker) objectRole(f *frame) {
	n := len(w.frames)
	if n == 0 {
		return
	}
	p := &w.frames[n-1]
	if p.array {
		switch p.role {
		case roleEntryArray:
			f.role = roleEntry
			f.list = p.entryList
			l := &w.lists[p.entryList]
			f.entry = len(*l)
			*l = append(*l, entryFacts{index: f.index})
		case roleContainedArray:
			f.role = roleContained
		default:
			if k := string(p.key); k == "extension" || k == "modifierExtension" {
				f.role = roleExtension
			}
		}
		return
	}
	switch string(f.key) {
	case "resource":
		if n >= 2 && p.index >= 0 && w.frames[n-2].array {
			if k := string(w.frames[n-2].key); k == "parameter" || k == "part" {
				f.role = roleParamResource
				return
			}
		}
		if p.role == roleEntry {
			f.role, f.list, f.entry = roleEntryResource, p.list, p.entry
		}
	case "request":
		if p.role == roleEntry {
			f.role, f.list, f.entry = roleEntryRequest, p.list, p.entry
		}
	case "meta":
		switch p.role {
		case roleEntryResource:
			f.role, f.list, f.entry = roleEntryMeta, p.list, p.entry
		case roleContained:
			f.role = roleContainedMeta
		}
	case "identifier":
		f.role = roleIdentifier
	case "text":
		f.role = roleNarrative
	}
}

// member notes the presence of a property, whatever its value, for the checks that
// depend on which properties an object has (Bundle entries, extensions).
func (w *walker) member(fi int, k []byte) {
	f := &w.frames[fi]
	f.members++
	switch f.role {
	case roleContainedMeta:
		switch string(k) {
		case "versionId", "lastUpdated":
			w.issue(SeverityError, CodeInvariant, "dom-4: a contained resource SHALL NOT have a meta.versionId or a meta.lastUpdated", k, -1)
		case "security":
			w.issue(SeverityError, CodeInvariant, "dom-5: a contained resource SHALL NOT have a security label", k, -1)
		}
		return
	case roleExtension:
		switch {
		case string(k) == "extension":
			f.extNested = true
		case len(k) > 5 && string(k[:5]) == "value" && k[5] >= 'A' && k[5] <= 'Z':
			f.extValue = true
		}
		return
	case roleEntry:
	default:
		return
	}
	e := &w.lists[f.list][f.entry]
	switch string(k) {
	case "request":
		e.hasRequest = true
	case "resource":
		e.hasResource = true
	case "response":
		e.hasResponse = true
	case "search":
		e.hasSearch = true
	}
}

// checkKey checks a property name: FHIR JSON names are case-sensitive lowerCamelCase (a
// leading '_' marks a primitive's extensions), and may appear once per object.
func (w *walker) checkKey(fi int, k []byte) {
	name := k
	if len(name) > 0 && name[0] == '_' {
		name = name[1:]
	}
	switch {
	case len(name) == 0:
		w.issue(SeverityError, CodeStructure, "empty property name", nil, -1)
	case name[0] >= 'A' && name[0] <= 'Z':
		w.issue(SeverityError, CodeStructure, fmt.Sprintf("unknown element %q (FHIR JSON property names are case-sensitive)", k), k, -1)
	}
	keys := w.keys[w.frames[fi].keysStart:]
	for _, prev := range keys {
		if string(prev) == string(k) {
			w.issue(SeverityError, CodeStructure, fmt.Sprintf("duplicate property %q", k), k, -1)
			return
		}
	}
	// Beyond a few dozen properties a linear search gets costly; such objects do not
	// occur in FHIR, so later duplicates there go unreported by this check.
	if len(keys) < 64 {
		w.keys = append(w.keys, k)
	}
}

// stringValue handles a non-empty string property or element.
func (w *walker) stringValue(key []byte, index int, vs, ve int, esc bool) {
	if index >= 0 || len(w.frames) == 0 {
		return
	}
	fi := len(w.frames) - 1
	f := &w.frames[fi]
	switch string(key) {
	case "resourceType":
		f.rt = w.unescape(vs, ve, esc)
		if f.role == roleEntryResource {
			w.lists[f.list][f.entry].resourceType = f.rt
		}
	case "type":
		f.typ = w.unescape(vs, ve, esc)
	case "timestamp":
		f.hasStamp = true
	case "div":
		if f.role == roleNarrative {
			w.checkNarrative(string(w.unescape(vs, ve, esc)), w.path(len(w.frames), key, -1))
		}
	}
	switch f.role {
	case roleEntry:
		if string(key) == "fullUrl" {
			w.lists[f.list][f.entry].fullURL = w.unescape(vs, ve, esc)
		}
	case roleEntryRequest:
		switch string(key) {
		case "method":
			w.lists[f.list][f.entry].method = w.unescape(vs, ve, esc)
		case "url":
			w.lists[f.list][f.entry].url = w.unescape(vs, ve, esc)
		}
	case roleEntryMeta:
		if string(key) == "versionId" {
			w.lists[f.list][f.entry].versionID = w.unescape(vs, ve, esc)
		}
	case roleIdentifier:
		if fi > 0 {
			switch string(key) {
			case "system":
				w.frames[fi-1].identSys = true
			case "value":
				w.frames[fi-1].identValue = true
			}
		}
	}
}

// arrayValue walks a JSON array.
func (w *walker) arrayValue(key []byte, index int) error {
	f := frame{key: key, index: index, array: true, entryList: -1, entry: -1, list: -1}
	if n := len(w.frames); n > 0 && index < 0 && !w.frames[n-1].array {
		p := &w.frames[n-1]
		switch string(key) {
		case "entry":
			f.role = roleEntryArray
			if p.entryList < 0 {
				p.entryList = w.pushList()
			} else {
				w.lists[p.entryList] = w.lists[p.entryList][:0]
			}
			f.entryList = p.entryList
		case "contained":
			f.role = roleContainedArray
			for i := n - 1; i >= 0; i-- {
				if w.frames[i].role == roleContained {
					w.issue(SeverityError, CodeInvariant, "dom-2: a contained resource SHALL NOT contain nested resources", key, -1)
					break
				}
			}
		}
	}
	fi, err := w.push(f)
	if err != nil {
		return err
	}
	w.pos++ // '['
	w.skipWS()
	if w.pos < len(w.data) && w.data[w.pos] == ']' {
		w.pos++
		w.frames = w.frames[:fi]
		w.issue(SeverityError, CodeStructure, "empty array; FHIR does not allow empty elements, omit the element instead", key, index)
		return nil
	}
	for i := 0; ; i++ {
		w.skipWS()
		if err := w.value(nil, i); err != nil {
			return err
		}
		w.skipWS()
		if w.pos >= len(w.data) {
			return w.syntaxError("unexpected end of input in an array")
		}
		if w.data[w.pos] == ',' {
			w.pos++
			continue
		}
		if w.data[w.pos] == ']' {
			w.pos++
			break
		}
		return w.syntaxError("expected ',' or ']' in an array")
	}
	w.frames = w.frames[:fi]
	return nil
}

// pushList opens a fresh list of entry facts, reusing earlier storage.
func (w *walker) pushList() int {
	if w.nLists < len(w.lists) {
		w.lists[w.nLists] = w.lists[w.nLists][:0]
	} else {
		w.lists = append(w.lists, nil)
	}
	w.nLists++
	return w.nLists - 1
}

// endObject runs the checks due when an object closes. f is the closed frame, whose index
// fi is now the length of w.frames (its path is the path of frames[:fi] plus its step).
func (w *walker) endObject(fi int, start int, f frame) {
	if f.role == roleContained {
		w.contained = append(w.contained, span{start: start, end: w.pos, rel: w.path(fi, f.key, f.index)})
	}
	if f.role == roleExtension && f.members > 0 && f.extValue == f.extNested {
		w.issueAt(SeverityError, CodeInvariant, "ext-1: an extension must have either extensions or value[x], not both",
			w.path(fi, f.key, f.index))
	}
	if f.role == roleParamResource {
		w.params = append(w.params, span{start: start, end: w.pos, rel: w.path(fi, f.key, f.index)})
	}
	if string(f.rt) == "Bundle" {
		var facts []entryFacts
		if f.entryList >= 0 {
			facts = w.lists[f.entryList]
		}
		w.checkBundle(w.path(fi, f.key, f.index), f, facts)
	}
	if f.entryList >= 0 && f.entryList == w.nLists-1 {
		w.nLists--
	}
}
