package fhirpath

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

type temporalKind uint8

const (
	kindDateTime temporalKind = iota
	kindDate
	kindTime
)

// Precision is the finest component a Temporal specifies.
type Precision uint8

// Precisions of a Temporal, coarse to fine.
const (
	PrecYear Precision = iota
	PrecMonth
	PrecDay
	PrecHour
	PrecMinute
	PrecSecond
	PrecMillisecond
)

// Temporal is a System.Date, System.DateTime or System.Time value with
// partial precision and an optional time-zone offset.
type Temporal struct {
	kind                                   temporalKind
	prec                                   Precision
	year, month, day, hour, minute, second int
	nanos                                  int
	fracDigits                             int
	hasTZ                                  bool
	offset                                 int // minutes east of UTC
}

// Precision returns the finest component the value specifies.
func (t Temporal) Precision() Precision { return t.prec }

// IsDate reports whether t is a System.Date.
func (t Temporal) IsDate() bool { return t.kind == kindDate }

// IsTime reports whether t is a System.Time.
func (t Temporal) IsTime() bool { return t.kind == kindTime }

// Bounds returns the earliest and latest instants the value covers
// (for example 2020-03 covers 2020-03-01T00:00:00 to 2020-03-31T23:59:59.999...).
// Values without an offset are taken as UTC. Times have no bounds (ok=false).
func (t Temporal) Bounds() (low, high time.Time, ok bool) {
	if t.kind == kindTime {
		return time.Time{}, time.Time{}, false
	}
	loc := time.UTC
	if t.hasTZ {
		loc = time.FixedZone("", t.offset*60)
	}
	month, day := max(t.month, 1), max(t.day, 1)
	low = time.Date(t.year, time.Month(month), day, t.hour, t.minute, t.second, t.nanos, loc)
	switch t.prec {
	case PrecYear:
		high = low.AddDate(1, 0, 0)
	case PrecMonth:
		high = low.AddDate(0, 1, 0)
	case PrecDay:
		high = low.AddDate(0, 0, 1)
	case PrecHour:
		high = low.Add(time.Hour)
	case PrecMinute:
		high = low.Add(time.Minute)
	case PrecSecond:
		high = low.Add(time.Second)
	default:
		high = low.Add(time.Millisecond)
	}
	return low.UTC(), high.Add(-time.Nanosecond).UTC(), true
}

// String renders the value in FHIR/ISO 8601 form without the '@'.
func (t Temporal) String() string {
	var b strings.Builder
	if t.kind != kindTime {
		fmt.Fprintf(&b, "%04d", t.year)
		if t.prec >= PrecMonth {
			fmt.Fprintf(&b, "-%02d", t.month)
		}
		if t.prec >= PrecDay {
			fmt.Fprintf(&b, "-%02d", t.day)
		}
		if t.kind == kindDate || t.prec < PrecHour {
			return b.String()
		}
		b.WriteByte('T')
	}
	fmt.Fprintf(&b, "%02d", t.hour)
	if t.prec >= PrecMinute {
		fmt.Fprintf(&b, ":%02d", t.minute)
	}
	if t.prec >= PrecSecond {
		fmt.Fprintf(&b, ":%02d", t.second)
	}
	if t.prec >= PrecMillisecond {
		digits := t.fracDigits
		if digits <= 0 {
			digits = 3
		}
		frac := fmt.Sprintf("%09d", t.nanos)
		b.WriteByte('.')
		b.WriteString(frac[:min(digits, 9)])
	}
	if t.kind != kindDate && t.hasTZ {
		if t.offset == 0 {
			b.WriteByte('Z')
		} else {
			o := t.offset
			sign := byte('+')
			if o < 0 {
				sign = '-'
				o = -o
			}
			fmt.Fprintf(&b, "%c%02d:%02d", sign, o/60, o%60)
		}
	}
	return b.String()
}

// parseTemporal parses a FHIR date, dateTime, instant or time (or a FHIRPath
// literal body without '@'). A dateTime may be a bare date ("2020-01-02") or
// end in 'T' ("2020-01-02T").
func parseTemporal(s string, kind temporalKind) (Temporal, error) {
	t := Temporal{kind: kind}
	bad := func() (Temporal, error) { return Temporal{}, fmt.Errorf("fhirpath: invalid %s %q", kindName(kind), s) }
	num := func(p string, n int) (int, string, bool) {
		if len(p) < n {
			return 0, p, false
		}
		v := 0
		for i := 0; i < n; i++ {
			c := p[i]
			if c < '0' || c > '9' {
				return 0, p, false
			}
			v = v*10 + int(c-'0')
		}
		return v, p[n:], true
	}
	rest := s
	var ok bool
	if kind != kindTime {
		if t.year, rest, ok = num(rest, 4); !ok {
			return bad()
		}
		t.prec = PrecYear
		if strings.HasPrefix(rest, "-") {
			if t.month, rest, ok = num(rest[1:], 2); !ok || t.month < 1 || t.month > 12 {
				return bad()
			}
			t.prec = PrecMonth
			if strings.HasPrefix(rest, "-") {
				if t.day, rest, ok = num(rest[1:], 2); !ok || t.day < 1 || t.day > daysIn(t.year, t.month) {
					return bad()
				}
				t.prec = PrecDay
			}
		}
		if rest == "" {
			return t, nil
		}
		if kind == kindDate || rest[0] != 'T' {
			return bad()
		}
		rest = rest[1:]
		if rest == "" {
			return t, nil
		}
		if t.prec != PrecDay {
			return bad()
		}
	}
	if t.hour, rest, ok = num(rest, 2); !ok || t.hour > 23 {
		return bad()
	}
	t.prec = PrecHour
	if strings.HasPrefix(rest, ":") {
		if t.minute, rest, ok = num(rest[1:], 2); !ok || t.minute > 59 {
			return bad()
		}
		t.prec = PrecMinute
		if strings.HasPrefix(rest, ":") {
			if t.second, rest, ok = num(rest[1:], 2); !ok || t.second > 60 {
				return bad()
			}
			t.prec = PrecSecond
			if strings.HasPrefix(rest, ".") {
				i := 1
				for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
					i++
				}
				if i == 1 || i > 10 {
					return bad()
				}
				frac := rest[1:i]
				t.fracDigits = len(frac)
				n, _ := strconv.Atoi((frac + "000000000")[:9])
				t.nanos = n
				t.prec = PrecMillisecond
				rest = rest[i:]
			}
		}
	}
	if rest == "" {
		return t, nil
	}
	if kind == kindDate {
		return bad()
	}
	// A time-of-day may carry a zone in FHIRPath literals (@T10:00Z); it is kept but not used.
	if rest == "Z" {
		t.hasTZ = true
		return t, nil
	}
	if (rest[0] == '+' || rest[0] == '-') && len(rest) == 6 && rest[3] == ':' {
		h, _, ok1 := num(rest[1:3], 2)
		m, _, ok2 := num(rest[4:6], 2)
		if !ok1 || !ok2 || h > 14 || m > 59 {
			return bad()
		}
		t.hasTZ = true
		t.offset = h*60 + m
		if rest[0] == '-' {
			t.offset = -t.offset
		}
		return t, nil
	}
	return bad()
}

func kindName(k temporalKind) string {
	switch k {
	case kindDate:
		return "date"
	case kindTime:
		return "time"
	}
	return "dateTime"
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// temporalFromTime builds a DateTime (millisecond precision, with offset).
func temporalFromTime(tm time.Time, kind temporalKind, prec Precision) Temporal {
	_, off := tm.Zone()
	t := Temporal{kind: kind, prec: prec, year: tm.Year(), month: int(tm.Month()), day: tm.Day(),
		hour: tm.Hour(), minute: tm.Minute(), second: tm.Second(), nanos: tm.Nanosecond() / 1e6 * 1e6,
		fracDigits: 3, hasTZ: kind == kindDateTime, offset: off / 60}
	return t
}

// normalized returns the value shifted to UTC when it has an offset and
// hour or finer precision.
func (t Temporal) normalized() Temporal {
	if !t.hasTZ || t.kind != kindDateTime || t.prec < PrecHour || t.offset == 0 {
		return t
	}
	tm := time.Date(t.year, time.Month(t.month), t.day, t.hour, t.minute, t.second, t.nanos, time.FixedZone("", t.offset*60)).UTC()
	u := t
	u.year, u.month, u.day, u.hour, u.minute, u.second = tm.Year(), int(tm.Month()), tm.Day(), tm.Hour(), tm.Minute(), tm.Second()
	u.offset = 0
	return u
}

// compareTemporal compares two values component by component. It returns
// (cmp, true) when the order is known and (0, false) when the values differ
// in precision and agree on all common components.
func compareTemporal(a, b Temporal) (int, bool) {
	if a.hasTZ && b.hasTZ {
		a, b = a.normalized(), b.normalized()
	}
	pa, pb := a.prec, b.prec
	if pa == PrecMillisecond {
		pa = PrecSecond
	}
	if pb == PrecMillisecond {
		pb = PrecSecond
	}
	common := min(pa, pb)
	start := PrecYear
	if a.kind == kindTime {
		start = PrecHour
	}
	for p := start; p <= common; p++ {
		var x, y int
		switch p {
		case PrecYear:
			x, y = a.year, b.year
		case PrecMonth:
			x, y = a.month, b.month
		case PrecDay:
			x, y = a.day, b.day
		case PrecHour:
			x, y = a.hour, b.hour
		case PrecMinute:
			x, y = a.minute, b.minute
		case PrecSecond:
			x, y = a.second*1e9+a.nanos, b.second*1e9+b.nanos
		}
		if x < y {
			return -1, true
		}
		if x > y {
			return 1, true
		}
	}
	if pa != pb {
		return 0, false
	}
	return 0, true
}

// calendarUnits maps calendar duration keywords to their canonical singular.
var calendarUnits = map[string]string{
	"year": "year", "years": "year", "month": "month", "months": "month",
	"week": "week", "weeks": "week", "day": "day", "days": "day",
	"hour": "hour", "hours": "hour", "minute": "minute", "minutes": "minute",
	"second": "second", "seconds": "second", "millisecond": "millisecond", "milliseconds": "millisecond",
}

// ucumTimeUnits maps UCUM time units to calendar keywords for date arithmetic.
var ucumTimeUnits = map[string]string{
	"a": "year", "mo": "month", "wk": "week", "d": "day", "h": "hour", "min": "minute", "s": "second", "ms": "millisecond",
}

// addTemporal adds a time-valued quantity to a date, dateTime or time.
func addTemporal(t Temporal, q Quantity, sign int) (Temporal, error) {
	unit := calendarUnits[q.Unit]
	if unit == "" {
		unit = ucumTimeUnits[q.Unit]
	}
	if unit == "" {
		return Temporal{}, fmt.Errorf("fhirpath: cannot add %s to a date/time", q.String())
	}
	if !q.Value.isInt() && unit != "second" && unit != "millisecond" {
		// Fractional calendar amounts are truncated, as the spec allows.
		q.Value = Decimal{r: new(big.Rat).SetInt(truncRat(q.Value.rat())), scale: 0}
	}
	amount := q.Value.rat()
	if sign < 0 {
		amount = new(big.Rat).Neg(amount)
	}
	n := truncRat(amount).Int64()
	if t.kind == kindTime {
		base := time.Date(2000, 1, 1, t.hour, t.minute, t.second, t.nanos, time.UTC)
		var d time.Duration
		switch unit {
		case "hour":
			d = time.Duration(n) * time.Hour
		case "minute":
			d = time.Duration(n) * time.Minute
		case "second", "millisecond":
			f, _ := amount.Float64()
			if unit == "second" {
				d = time.Duration(f * float64(time.Second))
			} else {
				d = time.Duration(f * float64(time.Millisecond))
			}
		default:
			return Temporal{}, fmt.Errorf("fhirpath: cannot add %s to a time", q.String())
		}
		tm := base.Add(d)
		u := t
		u.hour, u.minute, u.second, u.nanos = tm.Hour(), tm.Minute(), tm.Second(), tm.Nanosecond()
		return u, nil
	}
	u := t
	switch unit {
	case "year":
		u.year += int(n)
		if u.prec >= PrecDay {
			u.day = min(u.day, daysIn(u.year, u.month))
		}
		return u, nil
	case "month":
		if u.prec < PrecMonth {
			u.year += int(n) / 12
			return u, nil
		}
		m := u.year*12 + (u.month - 1) + int(n)
		u.year, u.month = m/12, m%12+1
		if u.prec >= PrecDay {
			u.day = min(u.day, daysIn(u.year, u.month))
		}
		return u, nil
	}
	var d time.Duration
	switch unit {
	case "week":
		d = time.Duration(n) * 7 * 24 * time.Hour
	case "day":
		d = time.Duration(n) * 24 * time.Hour
	case "hour":
		d = time.Duration(n) * time.Hour
	case "minute":
		d = time.Duration(n) * time.Minute
	case "second":
		f, _ := amount.Float64()
		d = time.Duration(f * float64(time.Second))
	case "millisecond":
		f, _ := amount.Float64()
		d = time.Duration(f * float64(time.Millisecond))
	}
	if u.prec < PrecDay {
		// Amounts finer than the value's precision are dropped.
		return u, nil
	}
	if u.prec == PrecDay {
		d = d / (24 * time.Hour) * (24 * time.Hour)
	}
	tm := time.Date(u.year, time.Month(u.month), u.day, u.hour, u.minute, u.second, u.nanos, time.UTC).Add(d)
	u.year, u.month, u.day, u.hour, u.minute, u.second, u.nanos = tm.Year(), int(tm.Month()), tm.Day(), tm.Hour(), tm.Minute(), tm.Second(), tm.Nanosecond()
	return u, nil
}

func truncRat(r *big.Rat) *big.Int {
	return new(big.Int).Quo(r.Num(), r.Denom())
}
