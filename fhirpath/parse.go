package fhirpath

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Limits applied by Compile.
const (
	// MaxExpressionLength is the longest expression Compile accepts.
	MaxExpressionLength = 10000
	// MaxNesting is the deepest expression nesting Compile accepts.
	MaxNesting = 200
)

// ErrSyntax is wrapped by every error Compile returns for an invalid
// expression.
var ErrSyntax = errors.New("fhirpath: syntax error")

var dateLiteralRE = regexp.MustCompile(`^@(\d{4}(-\d{2}(-\d{2})?)?(T(\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:\d{2})?)?)?|T\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:\d{2})?)`)

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tDelimIdent // `...`
	tString
	tNumber
	tDate // @...
	tOp
	tVar     // %name
	tSpecial // $this, $index, $total
)

type token struct {
	kind tokKind
	text string // identifier name, unescaped string, number text, operator
	pos  int
}

func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	errAt := func(pos int, msg string, args ...any) error {
		return fmt.Errorf("%w at %d: %s", ErrSyntax, pos, fmt.Sprintf(msg, args...))
	}
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, errAt(i, "unterminated comment")
			}
			i += end + 4
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{tIdent, src[i:j], i})
			i = j
		case c == '`' || c == '\'':
			s, n, err := lexQuoted(src[i:], c)
			if err != nil {
				return nil, errAt(i, "%v", err)
			}
			k := tString
			if c == '`' {
				k = tDelimIdent
			}
			toks = append(toks, token{k, s, i})
			i += n
		case c >= '0' && c <= '9':
			j := i
			for j < len(src) && src[j] >= '0' && src[j] <= '9' {
				j++
			}
			if j+1 < len(src) && src[j] == '.' && src[j+1] >= '0' && src[j+1] <= '9' {
				j++
				for j < len(src) && src[j] >= '0' && src[j] <= '9' {
					j++
				}
			}
			// The long suffix 'L' of FHIRPath 2.0 is accepted and ignored.
			if j < len(src) && src[j] == 'L' && (j+1 >= len(src) || !isIdentPart(src[j+1])) {
				toks = append(toks, token{tNumber, src[i:j], i})
				i = j + 1
				continue
			}
			toks = append(toks, token{tNumber, src[i:j], i})
			i = j
		case c == '@':
			m := dateLiteralRE.FindString(src[i:])
			if m == "" {
				return nil, errAt(i, "invalid date/time literal")
			}
			toks = append(toks, token{tDate, m[1:], i})
			i += len(m)
		case c == '%':
			if i+1 < len(src) && (src[i+1] == '`' || src[i+1] == '\'' || src[i+1] == '"') {
				s, n, err := lexQuoted(src[i+1:], src[i+1])
				if err != nil {
					return nil, errAt(i, "%v", err)
				}
				toks = append(toks, token{tVar, s, i})
				i += 1 + n
				continue
			}
			j := i + 1
			for j < len(src) && (isIdentPart(src[j]) || src[j] == '-') {
				j++
			}
			if j == i+1 {
				return nil, errAt(i, "empty variable name")
			}
			toks = append(toks, token{tVar, src[i+1 : j], i})
			i = j
		case c == '$':
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			name := src[i+1 : j]
			if name != "this" && name != "index" && name != "total" {
				return nil, errAt(i, "unknown special variable $%s", name)
			}
			toks = append(toks, token{tSpecial, name, i})
			i = j
		default:
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			switch two {
			case "<=", ">=", "!=", "!~":
				toks = append(toks, token{tOp, two, i})
				i += 2
				continue
			}
			if strings.IndexByte(".[](),+-*/&|=~<>{}", c) >= 0 {
				toks = append(toks, token{tOp, string(c), i})
				i++
				continue
			}
			r, _ := utf8.DecodeRuneInString(src[i:])
			return nil, errAt(i, "unexpected character %q", r)
		}
	}
	toks = append(toks, token{tEOF, "", len(src)})
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// lexQuoted reads a '...' or `...` literal with FHIRPath escapes and returns
// its value and length.
func lexQuoted(s string, q byte) (string, int, error) {
	var b strings.Builder
	i := 1
	for i < len(s) {
		c := s[i]
		if c == q {
			return b.String(), i + 1, nil
		}
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			break
		}
		e := s[i+1]
		switch e {
		case '\'', '"', '`', '\\', '/':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if i+6 > len(s) {
				return "", 0, errors.New("bad unicode escape")
			}
			var r rune
			for _, h := range s[i+2 : i+6] {
				r <<= 4
				switch {
				case h >= '0' && h <= '9':
					r |= h - '0'
				case h >= 'a' && h <= 'f':
					r |= h - 'a' + 10
				case h >= 'A' && h <= 'F':
					r |= h - 'A' + 10
				default:
					return "", 0, errors.New("bad unicode escape")
				}
			}
			b.WriteRune(r)
			i += 6
			continue
		default:
			return "", 0, fmt.Errorf("unknown escape \\%c", e)
		}
		i += 2
	}
	return "", 0, errors.New("unterminated literal")
}

type parser struct {
	toks  []token
	pos   int
	depth int
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) errorf(t token, format string, args ...any) error {
	return fmt.Errorf("%w at %d: %s", ErrSyntax, t.pos, fmt.Sprintf(format, args...))
}

func (p *parser) isOp(s string) bool {
	t := p.peek()
	return t.kind == tOp && t.text == s
}

func (p *parser) expectOp(s string) error {
	t := p.next()
	if t.kind != tOp || t.text != s {
		return p.errorf(t, "expected %q, found %q", s, t.text)
	}
	return nil
}

// binary operator precedence, higher binds tighter.
func binaryPrec(t token) int {
	switch t.kind {
	case tOp:
		switch t.text {
		case "*", "/":
			return 10
		case "+", "-", "&":
			return 9
		case "|":
			return 7
		case "<", ">", "<=", ">=":
			return 6
		case "=", "~", "!=", "!~":
			return 5
		}
	case tIdent:
		switch t.text {
		case "div", "mod":
			return 10
		case "is", "as":
			return 8
		case "in", "contains":
			return 4
		case "and":
			return 3
		case "or", "xor":
			return 2
		case "implies":
			return 1
		}
	}
	return 0
}

func (p *parser) parseExpr(minPrec int) (node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > MaxNesting {
		return nil, p.errorf(p.peek(), "expression nested deeper than %d", MaxNesting)
	}
	left, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		prec := binaryPrec(t)
		if prec == 0 || prec < minPrec {
			return left, nil
		}
		p.next()
		if prec == 8 {
			name, err := p.parseTypeSpecifier()
			if err != nil {
				return nil, err
			}
			left = &typeNode{op: t.text, x: left, typ: name}
			continue
		}
		right, err := p.parseExpr(prec + 1)
		if err != nil {
			return nil, err
		}
		left, err = newBinary(t.text, left, right)
		if err != nil {
			return nil, p.errorf(t, "%v", err)
		}
	}
}

func (p *parser) parseTypeSpecifier() (string, error) {
	t := p.next()
	if t.kind != tIdent && t.kind != tDelimIdent {
		return "", p.errorf(t, "expected a type name, found %q", t.text)
	}
	name := t.text
	// Qualified names: FHIR.x, System.X and backbone types such as Observation.component.
	for p.isOp(".") {
		nt := p.toks[p.pos+1]
		if nt.kind != tIdent && nt.kind != tDelimIdent {
			break
		}
		if name != "FHIR" && name != "System" && lookupType(name+"."+nt.text) == nil && !strings.HasPrefix(name, "FHIR.") {
			break
		}
		p.next()
		p.next()
		name += "." + nt.text
	}
	return name, nil
}

func (p *parser) parseUnary() (node, error) {
	if p.isOp("+") || p.isOp("-") {
		t := p.next()
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > MaxNesting {
			return nil, p.errorf(t, "expression nested deeper than %d", MaxNesting)
		}
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if t.text == "+" {
			return x, nil
		}
		if lit, ok := x.(*litNode); ok {
			if neg, ok := negateLiteral(lit); ok {
				return neg, nil
			}
		}
		return &negNode{x: x}, nil
	}
	return p.parsePostfix()
}

func (p *parser) parsePostfix() (node, error) {
	x, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isOp("."):
			p.next()
			inv, err := p.parseInvocation(false)
			if err != nil {
				return nil, err
			}
			x = &invokeNode{left: x, right: inv}
		case p.isOp("["):
			p.next()
			idx, err := p.parseExpr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expectOp("]"); err != nil {
				return nil, err
			}
			x = &indexNode{x: x, idx: idx}
		default:
			return x, nil
		}
	}
}

// parseInvocation parses an identifier or function call; root is true at the
// start of an expression, where a type name filters the input.
func (p *parser) parseInvocation(root bool) (node, error) {
	t := p.next()
	switch t.kind {
	case tIdent, tDelimIdent:
	case tSpecial:
		if !root {
			return nil, p.errorf(t, "unexpected $%s", t.text)
		}
		return &specialNode{name: t.text}, nil
	default:
		return nil, p.errorf(t, "expected an identifier, found %q", t.text)
	}
	if t.kind == tIdent && p.isOp("(") {
		p.next()
		var args []node
		if !p.isOp(")") {
			for {
				a, err := p.parseExpr(0)
				if err != nil {
					return nil, err
				}
				args = append(args, a)
				if p.isOp(",") {
					p.next()
					continue
				}
				break
			}
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
		return newFunc(t.text, args, func(format string, a ...any) error { return p.errorf(t, format, a...) })
	}
	return newMember(t.text, root), nil
}

var calendarKeywords = calendarUnits

func (p *parser) parseTerm() (node, error) {
	t := p.peek()
	switch t.kind {
	case tEOF:
		return nil, p.errorf(t, "unexpected end of expression")
	case tString:
		p.next()
		return newLit(Value{data: t.text, typ: TypeString, index: -1}), nil
	case tNumber:
		p.next()
		// A number followed by a unit is a quantity.
		nt := p.peek()
		if nt.kind == tString || (nt.kind == tIdent && calendarKeywords[nt.text] != "") {
			p.next()
			d, err := ParseDecimal(t.text)
			if err != nil {
				return nil, p.errorf(t, "%v", err)
			}
			return newLit(Value{data: Quantity{Value: d, Unit: nt.text}, typ: TypeQuantity, index: -1}), nil
		}
		if strings.Contains(t.text, ".") {
			d, err := ParseDecimal(t.text)
			if err != nil {
				return nil, p.errorf(t, "%v", err)
			}
			return newLit(Value{data: d, typ: TypeDecimal, index: -1}), nil
		}
		var n int64
		for _, c := range t.text {
			if n > (1<<63-1-9)/10 {
				return nil, p.errorf(t, "integer %s out of range", t.text)
			}
			n = n*10 + int64(c-'0')
		}
		return newLit(Value{data: n, typ: TypeInteger, index: -1}), nil
	case tDate:
		p.next()
		v, err := parseDateLiteral(t.text)
		if err != nil {
			return nil, p.errorf(t, "%v", err)
		}
		return newLit(v), nil
	case tVar:
		p.next()
		return &varNode{name: t.text}, nil
	case tOp:
		switch t.text {
		case "(":
			p.next()
			x, err := p.parseExpr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			return x, nil
		case "{":
			p.next()
			if err := p.expectOp("}"); err != nil {
				return nil, err
			}
			return &litNode{}, nil
		}
		return nil, p.errorf(t, "unexpected %q", t.text)
	case tIdent:
		switch t.text {
		case "true", "false":
			p.next()
			return newLit(Value{data: t.text == "true", typ: TypeBoolean, index: -1}), nil
		}
	}
	return p.parseInvocation(true)
}

func parseDateLiteral(s string) (Value, error) {
	if strings.HasPrefix(s, "T") {
		t, err := parseTemporal(s[1:], kindTime)
		if err != nil {
			return Value{}, err
		}
		return Value{data: t, typ: TypeTime, index: -1}, nil
	}
	if !strings.Contains(s, "T") {
		t, err := parseTemporal(s, kindDate)
		if err != nil {
			return Value{}, err
		}
		return Value{data: t, typ: TypeDate, index: -1}, nil
	}
	t, err := parseTemporal(s, kindDateTime)
	if err != nil {
		return Value{}, err
	}
	return Value{data: t, typ: TypeDateTime, index: -1}, nil
}

func negateLiteral(l *litNode) (node, bool) {
	if len(l.c) != 1 {
		return nil, false
	}
	v := l.c[0]
	switch d := v.data.(type) {
	case int64:
		v.data = -d
	case Decimal:
		v.data = d.neg()
	case Quantity:
		v.data = Quantity{Value: d.Value.neg(), Unit: d.Unit}
	default:
		return nil, false
	}
	return newLit(v), true
}

// Expression is a compiled FHIRPath expression. It is immutable and safe for
// concurrent use.
type Expression struct {
	src  string
	root node
}

// Compile parses expr and checks function names and argument counts.
func Compile(expr string) (*Expression, error) {
	if len(expr) > MaxExpressionLength {
		return nil, fmt.Errorf("%w: expression longer than %d characters", ErrSyntax, MaxExpressionLength)
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	root, err := p.parseExpr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errorf(t, "unexpected %q", t.text)
	}
	return &Expression{src: expr, root: root}, nil
}

// MustCompile is like Compile but panics on error; for expressions that are
// constants of the program.
func MustCompile(expr string) *Expression {
	e, err := Compile(expr)
	if err != nil {
		panic(err)
	}
	return e
}

// String returns the source text of the expression.
func (e *Expression) String() string { return e.src }
