package conformance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrScript is wrapped by every error about a TestScript that cannot be run as written (bad
// JSON, unknown fixture, unreadable fixture file...). Failures of the server under test are
// not errors: they are reported in the Result.
var ErrScript = errors.New("conformance: invalid TestScript")

// testScript is the subset of the FHIR R4 TestScript resource the engine executes.
type testScript struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id"`
	URL          string            `json:"url"`
	Name         string            `json:"name"`
	Title        string            `json:"title"`
	Contained    []json.RawMessage `json:"contained"`
	Fixture      []scriptFixture   `json:"fixture"`
	Profile      []reference       `json:"profile"`
	Variable     []scriptVariable  `json:"variable"`
	Setup        *scriptSection    `json:"setup"`
	Test         []scriptTest      `json:"test"`
	Teardown     *scriptSection    `json:"teardown"`
}

type reference struct {
	ID        string `json:"id"`
	Reference string `json:"reference"`
	Display   string `json:"display"`
}

type scriptFixture struct {
	ID         string     `json:"id"`
	Autocreate bool       `json:"autocreate"`
	Autodelete bool       `json:"autodelete"`
	Resource   *reference `json:"resource"`
}

type scriptVariable struct {
	Name         string `json:"name"`
	DefaultValue string `json:"defaultValue"`
	Description  string `json:"description"`
	Expression   string `json:"expression"`
	HeaderField  string `json:"headerField"`
	Hint         string `json:"hint"`
	Path         string `json:"path"`
	SourceID     string `json:"sourceId"`
}

type scriptSection struct {
	Action []scriptAction `json:"action"`
}

type scriptTest struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Action      []scriptAction `json:"action"`
}

type scriptAction struct {
	Operation *operation `json:"operation"`
	Assert    *assertion `json:"assert"`
}

type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display"`
}

type requestHeader struct {
	Field string `json:"field"`
	Value string `json:"value"`
}

type operation struct {
	Type             *coding         `json:"type"`
	Resource         string          `json:"resource"`
	Label            string          `json:"label"`
	Description      string          `json:"description"`
	Accept           string          `json:"accept"`
	ContentType      string          `json:"contentType"`
	Destination      *int            `json:"destination"`
	EncodeRequestURL *bool           `json:"encodeRequestUrl"`
	Method           string          `json:"method"`
	Origin           *int            `json:"origin"`
	Params           string          `json:"params"`
	RequestHeader    []requestHeader `json:"requestHeader"`
	RequestID        string          `json:"requestId"`
	ResponseID       string          `json:"responseId"`
	SourceID         string          `json:"sourceId"`
	TargetID         string          `json:"targetId"`
	URL              string          `json:"url"`
}

type assertion struct {
	Label                     string `json:"label"`
	Description               string `json:"description"`
	Direction                 string `json:"direction"`
	CompareToSourceID         string `json:"compareToSourceId"`
	CompareToSourceExpression string `json:"compareToSourceExpression"`
	CompareToSourcePath       string `json:"compareToSourcePath"`
	ContentType               string `json:"contentType"`
	Expression                string `json:"expression"`
	HeaderField               string `json:"headerField"`
	MinimumID                 string `json:"minimumId"`
	NavigationLinks           *bool  `json:"navigationLinks"`
	Operator                  string `json:"operator"`
	Path                      string `json:"path"`
	RequestMethod             string `json:"requestMethod"`
	RequestURL                string `json:"requestURL"`
	Resource                  string `json:"resource"`
	Response                  string `json:"response"`
	ResponseCode              string `json:"responseCode"`
	SourceID                  string `json:"sourceId"`
	ValidateProfileID         string `json:"validateProfileId"`
	Value                     string `json:"value"`
	WarningOnly               bool   `json:"warningOnly"`
}

// operators are the codes of the assert-operator-codes value set.
var operators = map[string]bool{
	"": true, "equals": true, "notEquals": true, "in": true, "notIn": true, "greaterThan": true,
	"lessThan": true, "empty": true, "notEmpty": true, "contains": true, "notContains": true, "eval": true,
}

// validate checks the codes of an assert, so that a typo fails the script up front instead
// of failing (or passing) an assert at run time.
func (a *assertion) validate() error {
	if !operators[a.Operator] {
		return fmt.Errorf("unknown operator %q", a.Operator)
	}
	if a.Direction != "" && a.Direction != "response" && a.Direction != "request" {
		return fmt.Errorf("direction must be response or request, got %q", a.Direction)
	}
	if a.Response != "" {
		if _, ok := responseCodes[a.Response]; !ok {
			return fmt.Errorf("unknown response code %q", a.Response)
		}
	}
	if a.RequestMethod != "" && !requestMethods[a.RequestMethod] {
		return fmt.Errorf("unknown requestMethod %q", a.RequestMethod)
	}
	return nil
}

// requestMethods are the codes of the http-operations value set.
var requestMethods = map[string]bool{
	"delete": true, "get": true, "options": true, "patch": true, "post": true, "put": true, "head": true,
}

// parseScript decodes a TestScript and checks what the engine relies on.
func parseScript(b []byte) (*testScript, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var s testScript
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrScript, err)
	}
	if s.ResourceType != "TestScript" {
		return nil, fmt.Errorf("%w: resourceType is %q, want TestScript", ErrScript, s.ResourceType)
	}
	seen := map[string]bool{}
	for i, f := range s.Fixture {
		if f.ID == "" {
			return nil, fmt.Errorf("%w: fixture[%d] has no id", ErrScript, i)
		}
		if seen[f.ID] {
			return nil, fmt.Errorf("%w: fixture id %q is used twice", ErrScript, f.ID)
		}
		seen[f.ID] = true
	}
	vars := map[string]bool{}
	for i, v := range s.Variable {
		if v.Name == "" {
			return nil, fmt.Errorf("%w: variable[%d] has no name", ErrScript, i)
		}
		if vars[v.Name] {
			return nil, fmt.Errorf("%w: variable %q is declared twice", ErrScript, v.Name)
		}
		vars[v.Name] = true
		n := 0
		for _, x := range []string{v.Expression, v.HeaderField, v.Path} {
			if x != "" {
				n++
			}
		}
		if n > 1 {
			return nil, fmt.Errorf("%w: variable %q has more than one of expression, headerField and path", ErrScript, v.Name)
		}
	}
	check := func(where string, acts []scriptAction, allowAssert bool) error {
		for i, a := range acts {
			if (a.Operation == nil) == (a.Assert == nil) {
				return fmt.Errorf("%w: %s.action[%d] must have exactly one of operation and assert", ErrScript, where, i)
			}
			if a.Assert == nil {
				if m := a.Operation.Method; m != "" && !requestMethods[m] {
					return fmt.Errorf("%w: %s.action[%d].operation: unknown method %q", ErrScript, where, i, m)
				}
				continue
			}
			if !allowAssert {
				return fmt.Errorf("%w: %s.action[%d]: teardown actions cannot be asserts", ErrScript, where, i)
			}
			if err := a.Assert.validate(); err != nil {
				return fmt.Errorf("%w: %s.action[%d].assert: %v", ErrScript, where, i, err)
			}
		}
		return nil
	}
	if s.Setup != nil {
		if err := check("setup", s.Setup.Action, true); err != nil {
			return nil, err
		}
	}
	for i, t := range s.Test {
		if err := check(fmt.Sprintf("test[%d]", i), t.Action, true); err != nil {
			return nil, err
		}
	}
	if s.Teardown != nil {
		if err := check("teardown", s.Teardown.Action, false); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

// displayName is the name used in summaries and the TestReport.
func (s *testScript) displayName() string {
	switch {
	case s.Name != "":
		return s.Name
	case s.Title != "":
		return s.Title
	}
	return s.ID
}

// FindScripts expands paths (files or directories) into the TestScript files to run:
// directories are walked for *.json files whose resourceType is TestScript (fixture
// resources beside them are skipped, files that are not valid JSON are kept so that a broken
// script is reported); files named explicitly are taken as they are.
// The result is sorted within each directory walk.
func FindScripts(paths ...string) ([]string, error) {
	var out []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("conformance: %w", err)
		}
		if !info.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.EqualFold(filepath.Ext(path), ".json") {
				return nil
			}
			ok, err := isTestScript(path)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("conformance: walk %s: %w", p, err)
		}
	}
	return out, nil
}

// isTestScript reports whether the JSON file at path is a TestScript resource.
func isTestScript(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	if t := bytes.TrimSpace(b); json.Valid(t) && len(t) > 0 && t[0] != '{' {
		// Valid JSON that is not an object (a JSON Patch fixture is an array): not a script.
		return false, nil
	}
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if json.Unmarshal(b, &head) != nil {
		// A broken script must be reported, not skipped.
		return true, nil
	}
	return head.ResourceType == "TestScript", nil
}
