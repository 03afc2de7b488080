package conformance

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
)

// EngineURI identifies this engine in TestReport.participant.
const EngineURI = "https://github.com/vigil-health/vigil/conformance"

type reportJSON struct {
	ResourceType string              `json:"resourceType"`
	ID           string              `json:"id"`
	Name         string              `json:"name,omitempty"`
	Status       string              `json:"status"`
	TestScript   reportRef           `json:"testScript"`
	Result       string              `json:"result"`
	Score        json.Number         `json:"score"`
	Tester       string              `json:"tester"`
	Issued       string              `json:"issued"`
	Participant  []reportParticipant `json:"participant"`
	Setup        *reportSection      `json:"setup,omitempty"`
	Test         []reportTest        `json:"test,omitempty"`
	Teardown     *reportTeardown     `json:"teardown,omitempty"`
}

type reportRef struct {
	Reference string `json:"reference,omitempty"`
	Display   string `json:"display,omitempty"`
}

type reportParticipant struct {
	Type    string `json:"type"`
	URI     string `json:"uri"`
	Display string `json:"display,omitempty"`
}

type reportSection struct {
	Action []reportAction `json:"action"`
}

type reportTest struct {
	Name        string         `json:"name,omitempty"`
	Description string         `json:"description,omitempty"`
	Action      []reportAction `json:"action"`
}

type reportTeardown struct {
	Action []reportTeardownAction `json:"action"`
}

type reportAction struct {
	Operation *reportResult `json:"operation,omitempty"`
	Assert    *reportResult `json:"assert,omitempty"`
}

type reportTeardownAction struct {
	Operation reportResult `json:"operation"`
}

type reportResult struct {
	Result  string `json:"result"`
	Message string `json:"message,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

func toReportResult(a ActionResult) *reportResult {
	msg := a.Label
	if a.Message != "" {
		msg += ": " + a.Message
	}
	return &reportResult{Result: a.Result, Message: msg}
}

// report builds the TestReport resource.
func (x *run) report(res *Result) ([]byte, error) {
	now := time.Now
	if x.r.Now != nil {
		now = x.r.Now
	}
	rep := reportJSON{
		ResourceType: "TestReport",
		ID:           uuid.NewString(),
		Name:         res.Name,
		Status:       "completed",
		Result:       "pass",
		Tester:       "Vigil conformance engine",
		Issued:       now().UTC().Format(time.RFC3339Nano),
		Participant: []reportParticipant{
			{Type: "test-engine", URI: EngineURI, Display: "Vigil TestScript engine"},
			{Type: "server", URI: x.base},
		},
	}
	if x.script.ID != "" {
		rep.TestScript.Reference = "TestScript/" + x.script.ID
	}
	rep.TestScript.Display = res.Name
	if rep.TestScript.Reference == "" && rep.TestScript.Display == "" {
		rep.TestScript.Display = "TestScript"
	}
	if !res.OK() {
		rep.Result = "fail"
	}
	asserts, passed := 0, 0
	tests := make([]reportTest, len(x.script.Test))
	for i, t := range x.script.Test {
		tests[i] = reportTest{Name: t.Name, Description: t.Description}
	}
	var setup reportSection
	var teardown reportTeardown
	for _, a := range x.actions {
		if a.Kind == "assert" {
			asserts++
			if a.Result == ResultPass || a.Result == ResultWarning {
				passed++
			}
		}
		var ra reportAction
		if a.Kind == "operation" {
			ra.Operation = toReportResult(a)
		} else {
			ra.Assert = toReportResult(a)
		}
		switch a.Section {
		case "setup":
			setup.Action = append(setup.Action, ra)
		case "test":
			tests[a.TestIndex].Action = append(tests[a.TestIndex].Action, ra)
		case "teardown":
			teardown.Action = append(teardown.Action, reportTeardownAction{Operation: *toReportResult(a)})
		}
	}
	score := 100.0
	if asserts > 0 {
		score = float64(passed) * 100 / float64(asserts)
	}
	if !res.OK() && score == 100 {
		// Failed operations (errors) without failed asserts still cost the score.
		score = 0
	}
	rep.Score = json.Number(strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", score), "0"), "."))
	if len(setup.Action) > 0 {
		rep.Setup = &setup
	}
	// TestReport.test.action is 1..*: tests without actions are left out.
	for _, t := range tests {
		if len(t.Action) > 0 {
			rep.Test = append(rep.Test, t)
		}
	}
	if len(teardown.Action) > 0 {
		rep.Teardown = &teardown
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("conformance: encode TestReport: %w", err)
	}
	return b, nil
}

// WriteSummary writes a readable account of the run: one line per action with its result
// and, for each failure, the request line, response status and a truncated body.
func (r *Result) WriteSummary(w io.Writer) error {
	var b strings.Builder
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	name := r.Name
	if r.Script != "" {
		name += " (" + r.Script + ")"
	}
	fmt.Fprintf(&b, "%s %s: %d passed, %d failed, %d errors, %d warnings, %d skipped\n",
		verdict, name, r.Passed, r.Failed, r.Errors, r.Warnings, r.Skipped)
	for _, a := range r.Actions {
		where := a.Section
		if a.Section == "test" {
			where = "test " + quoteName(a.Test, a.TestIndex)
		}
		fmt.Fprintf(&b, "  %-7s %s %s %s", strings.ToUpper(a.Result), where, a.Kind, a.Label)
		if a.Message != "" && (a.Result != ResultPass || a.Kind == "operation") {
			fmt.Fprintf(&b, ": %s", oneLine(a.Message))
		}
		b.WriteByte('\n')
		if a.Result == ResultFail || a.Result == ResultError || a.Result == ResultWarning {
			if a.Request != "" {
				fmt.Fprintf(&b, "          request:  %s\n", a.Request)
				fmt.Fprintf(&b, "          response: %s\n", a.Status)
			}
			if a.Body != "" {
				fmt.Fprintf(&b, "          body:     %s\n", oneLine(a.Body))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func quoteName(name string, i int) string {
	if name == "" {
		return fmt.Sprintf("#%d", i+1)
	}
	return fmt.Sprintf("%q", name)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
