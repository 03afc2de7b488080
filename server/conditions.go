package server

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/vigil-health/vigil/fhirstore"
)

// resultParams are the parameters that shape a result rather than select resources; they
// are ignored when a query is used as a condition.
var resultParams = map[string]bool{
	"_format": true, "_pretty": true, "_count": true, "_sort": true, "_summary": true,
	"_elements": true, "_total": true, "_include": true, "_revinclude": true, "_page": true,
}

// conditionParams returns the selecting parameters of q.
func conditionParams(q url.Values) []string {
	var names []string
	for k := range q {
		if !resultParams[k] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// match finds the live resources of typ selected by q (at most limit ids). Conditions
// support _id and identifier; any other selecting parameter is refused with 400, because
// ignoring it would make a conditional write act on the wrong resource.
func (s *Server) match(ctx context.Context, tx *fhirstore.Tx, typ string, q url.Values, limit int) ([]string, *Error) {
	var ids []string
	var tokens []fhirstore.TokenMatch
	names := conditionParams(q)
	if len(names) == 0 {
		return nil, errorf(http.StatusBadRequest, "invalid", "the condition selects nothing: give search parameters such as identifier=system|value")
	}
	idSets := 0
	for _, name := range names {
		for _, v := range q[name] {
			switch name {
			case "_id":
				idSets++
				set := strings.Split(v, ",")
				if idSets == 1 {
					ids = set
				} else {
					ids = intersect(ids, set)
					if len(ids) == 0 {
						return nil, nil
					}
				}
			case "identifier":
				// Comma-separated alternatives (OR) are not expressible as one TokenMatch;
				// a condition is about one identifier, so refuse rather than guess.
				if strings.Contains(v, ",") {
					return nil, errorf(http.StatusBadRequest, "not-supported", "identifier with several alternatives is not supported in a condition")
				}
				tok := parseToken("identifier", v)
				if tok.Code == "" && tok.System == "" {
					return nil, errorf(http.StatusBadRequest, "invalid", "identifier needs a value: identifier=[system|]value")
				}
				tokens = append(tokens, tok)
			default:
				return nil, errorf(http.StatusBadRequest, "not-supported", "search parameter %q is not supported in conditions: use _id or identifier", name)
			}
		}
	}
	found, err := tx.FindIDs(ctx, typ, ids, tokens, limit)
	if err != nil {
		return nil, asError(err)
	}
	return found, nil
}

// parseToken reads a token search value: code, system|code, |code or system|.
func parseToken(param, v string) fhirstore.TokenMatch {
	sys, code, ok := cutUnescaped(v, '|')
	if !ok {
		return fhirstore.TokenMatch{Param: param, Code: unescape(v)}
	}
	return fhirstore.TokenMatch{Param: param, System: unescape(sys), SystemSet: true, Code: unescape(code)}
}

// cutUnescaped splits s at the first sep not preceded by a backslash (FHIR search escaping).
func cutUnescaped(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
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

func intersect(a, b []string) []string {
	set := make(map[string]bool, len(b))
	for _, x := range b {
		set[x] = true
	}
	var out []string
	for _, x := range a {
		if set[x] {
			out = append(out, x)
		}
	}
	return out
}
