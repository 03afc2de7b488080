package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/vigil-health/vigil/conformance"
)

const conformanceUsage = `Usage: vigil conformance run --base URL [--report FILE|DIR] [--header 'Name: value']... PATH...

Runs FHIR R4 TestScripts (JSON) against the FHIR server at --base (the FHIR base URL, e.g.
http://127.0.0.1:8080/fhir). PATHs are TestScript files or directories, walked for *.json
TestScripts. Prints a summary per script and exits non-zero when any script fails.

--report FILE writes a Bundle of all TestReports; --report DIR (an existing directory, or a
path ending in /) writes one TestReport per script.

Failures are printed with the request, the response status and the start of the response
body: run TestScripts against test data, never against a server holding real patients.

Flags:
`

// conformanceConfig is the typed configuration of `vigil conformance run`.
type conformanceConfig struct {
	Base    string
	Report  string
	Headers headerList
	Timeout time.Duration
	Verbose bool
	Paths   []string
}

// headerList is a repeatable --header flag.
type headerList []string

func (h *headerList) String() string { return strings.Join(*h, "; ") }

func (h *headerList) Set(v string) error {
	if _, _, err := parseHeader(v); err != nil {
		return err
	}
	*h = append(*h, v)
	return nil
}

func parseHeader(v string) (name, value string, err error) {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return "", "", fmt.Errorf("header %q: want 'Name: value'", redactHeader(v))
	}
	return name, strings.TrimSpace(value), nil
}

// redactHeader keeps a header's name only: values are often credentials.
func redactHeader(v string) string {
	if name, _, ok := strings.Cut(v, ":"); ok {
		return name + ": ..."
	}
	return v
}

func parseConformanceFlags(args []string, stderr io.Writer) (*conformanceConfig, error) {
	fs := flag.NewFlagSet("vigil conformance run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, conformanceUsage)
		fs.PrintDefaults()
	}
	c := &conformanceConfig{}
	ef := &envFlags{fs: fs}
	ef.String(&c.Base, "base", "VIGIL_CONFORMANCE_BASE", "", "FHIR base URL of the server under test, e.g. http://127.0.0.1:8080/fhir")
	ef.String(&c.Report, "report", "VIGIL_CONFORMANCE_REPORT", "", "write TestReports: a file (a Bundle of them) or a directory (one per script)")
	ef.Duration(&c.Timeout, "timeout", "VIGIL_CONFORMANCE_TIMEOUT", 60*time.Second, "timeout of each HTTP request")
	ef.Bool(&c.Verbose, "verbose", "VIGIL_CONFORMANCE_VERBOSE", false, "print every action of passing scripts too (failing scripts always are)")
	fs.Var(&c.Headers, "header", "request header added to every request, 'Name: value' (repeatable; env VIGIL_CONFORMANCE_HEADERS, one per line)")
	if ef.err != nil {
		return nil, ef.err
	}
	if v, ok := ef.env("VIGIL_CONFORMANCE_HEADERS"); ok {
		for _, line := range strings.Split(v, "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			if err := c.Headers.Set(line); err != nil {
				return nil, usageError{fmt.Errorf("VIGIL_CONFORMANCE_HEADERS: %w", err)}
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	c.Paths = fs.Args()
	switch {
	case c.Base == "":
		return nil, usageError{errors.New("conformance run: --base is required (the FHIR base URL, e.g. http://127.0.0.1:8080/fhir)")}
	case !strings.HasPrefix(c.Base, "http://") && !strings.HasPrefix(c.Base, "https://"):
		return nil, usageError{fmt.Errorf("conformance run: --base %q must be an http:// or https:// URL", c.Base)}
	case len(c.Paths) == 0:
		return nil, usageError{errors.New("conformance run: give at least one TestScript file or directory")}
	case c.Timeout <= 0:
		return nil, usageError{errors.New("conformance run: --timeout must be positive")}
	}
	return c, nil
}

// runConformance implements `vigil conformance run`.
func runConformance(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "run" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, conformanceUsage)
			return nil
		}
		fmt.Fprint(stderr, conformanceUsage)
		return usageError{errors.New("conformance: want the run subcommand")}
	}
	c, err := parseConformanceFlags(args[1:], stderr)
	if err != nil {
		return err
	}
	scripts, err := conformance.FindScripts(c.Paths...)
	if err != nil {
		return usageError{err}
	}
	if len(scripts) == 0 {
		return usageError{fmt.Errorf("conformance run: no TestScript found in %s", strings.Join(c.Paths, ", "))}
	}
	h := http.Header{}
	for _, line := range c.Headers {
		name, value, _ := parseHeader(line)
		h.Add(name, value)
	}
	r := &conformance.Runner{Base: c.Base, Client: &http.Client{Timeout: c.Timeout}, Headers: h}
	var (
		reports        []namedReport
		failed, broken int
	)
	for _, path := range scripts {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		res, err := r.RunFile(ctx, path)
		if err != nil {
			broken++
			fmt.Fprintf(stdout, "ERROR %s: %v\n", path, err)
			continue
		}
		if !res.OK() {
			failed++
		}
		if err := writeResult(stdout, res, c.Verbose || !res.OK()); err != nil {
			return err
		}
		reports = append(reports, namedReport{script: path, report: res.Report})
	}
	fmt.Fprintf(stdout, "\n%d TestScripts: %d passed, %d failed, %d could not run\n", len(scripts), len(scripts)-failed-broken, failed, broken)
	if c.Report != "" {
		if err := writeReports(c.Report, reports, c.Paths); err != nil {
			return err
		}
	}
	if failed+broken > 0 {
		return fmt.Errorf("conformance: %d of %d TestScripts failed", failed+broken, len(scripts))
	}
	return nil
}

// writeResult prints a script's summary: every action, or only its first line.
func writeResult(w io.Writer, res *conformance.Result, full bool) error {
	var b bytes.Buffer
	if err := res.WriteSummary(&b); err != nil {
		return err
	}
	out := b.Bytes()
	if !full {
		if i := bytes.IndexByte(out, '\n'); i >= 0 {
			out = out[:i+1]
		}
	}
	_, err := w.Write(out)
	return err
}

type namedReport struct {
	script string
	report []byte
}

// writeReports writes the TestReports: one file per script into a directory, or one Bundle.
func writeReports(dest string, reports []namedReport, roots []string) error {
	info, err := os.Stat(dest)
	isDir := err == nil && info.IsDir() || strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, string(os.PathSeparator))
	if isDir {
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return fmt.Errorf("conformance: --report: %w", err)
		}
		used := map[string]bool{}
		for _, r := range reports {
			name := reportFileName(r.script, roots)
			for i := 2; used[name]; i++ {
				name = strings.TrimSuffix(reportFileName(r.script, roots), ".json") + fmt.Sprintf("-%d.json", i)
			}
			used[name] = true
			if err := os.WriteFile(filepath.Join(dest, name), append(r.report, '\n'), 0o644); err != nil {
				return fmt.Errorf("conformance: --report: %w", err)
			}
		}
		return nil
	}
	type entry struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
	}
	bundle := struct {
		ResourceType string  `json:"resourceType"`
		ID           string  `json:"id"`
		Type         string  `json:"type"`
		Timestamp    string  `json:"timestamp"`
		Total        int     `json:"total"`
		Entry        []entry `json:"entry,omitempty"`
	}{ResourceType: "Bundle", ID: uuid.NewString(), Type: "collection", Timestamp: time.Now().UTC().Format(time.RFC3339), Total: len(reports)}
	for _, r := range reports {
		var head struct {
			ID string `json:"id"`
		}
		json.Unmarshal(r.report, &head)
		bundle.Entry = append(bundle.Entry, entry{FullURL: "urn:uuid:" + head.ID, Resource: r.report})
	}
	b, err := json.MarshalIndent(bundle, "", "  ")
	if err != nil {
		return fmt.Errorf("conformance: encode report Bundle: %w", err)
	}
	if err := os.WriteFile(dest, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("conformance: --report: %w", err)
	}
	return nil
}

// reportFileName names a script's TestReport after its path below the root it was found
// in: crud/create-read.json becomes crud-create-read.json.
func reportFileName(script string, roots []string) string {
	rel := filepath.Base(script)
	for _, root := range roots {
		if r, err := filepath.Rel(root, script); err == nil && !strings.HasPrefix(r, "..") && r != "." {
			rel = r
			break
		}
	}
	name := strings.ReplaceAll(filepath.ToSlash(rel), "/", "-")
	if !strings.HasSuffix(name, ".json") {
		name += ".json"
	}
	return name
}
