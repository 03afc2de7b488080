package hl7v2

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Precision is how much of a DTM was given.
type Precision int

// Precisions, from the coarsest.
const (
	PrecisionNone     Precision = iota // no value
	PrecisionYear                      // YYYY
	PrecisionMonth                     // YYYYMM
	PrecisionDay                       // YYYYMMDD
	PrecisionHour                      // YYYYMMDDHH
	PrecisionMinute                    // YYYYMMDDHHMM
	PrecisionSecond                    // YYYYMMDDHHMMSS
	PrecisionFraction                  // YYYYMMDDHHMMSS.S to .SSSS
)

// DTM is an HL7 date/time (DTM, or the first component of TS): the instant, how precise it was
// and whether it carried a UTC offset. Without an offset Time is in UTC and stands for a local
// time of the sender whose zone the message does not say.
type DTM struct {
	Time       time.Time
	Precision  Precision
	FracDigits int  // digits after the decimal point, 1 to 4, with PrecisionFraction
	HasOffset  bool // an offset such as -0500 was given
}

// IsZero reports whether the DTM is absent.
func (t DTM) IsZero() bool { return t.Precision == PrecisionNone }

var dtmLayouts = [...]string{
	PrecisionYear:   "2006",
	PrecisionMonth:  "200601",
	PrecisionDay:    "20060102",
	PrecisionHour:   "2006010215",
	PrecisionMinute: "200601021504",
	PrecisionSecond: "20060102150405",
}

// String formats the DTM at its precision, with its offset if it had one.
func (t DTM) String() string {
	if t.Precision == PrecisionNone {
		return ""
	}
	p := min(t.Precision, PrecisionSecond)
	s := t.Time.Format(dtmLayouts[p])
	if t.Precision == PrecisionFraction && t.FracDigits > 0 {
		frac := fmt.Sprintf("%09d", t.Time.Nanosecond())
		s += "." + frac[:min(t.FracDigits, 9)]
	}
	if t.HasOffset {
		s += t.Time.Format("-0700")
	}
	return s
}

// ParseDTM parses an HL7 date/time, YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]. "" gives a
// zero DTM.
func ParseDTM(s string) (DTM, error) {
	var t DTM
	if s == "" {
		return t, nil
	}
	body, off := s, ""
	for i := 4; i < len(s); i++ {
		if s[i] == '+' || s[i] == '-' {
			body, off = s[:i], s[i:]
			break
		}
	}
	loc := time.UTC
	if off != "" {
		if len(off) != 5 || !allDigits(off[1:]) {
			return t, errors.New("offset must be +ZZZZ or -ZZZZ")
		}
		h, _ := strconv.Atoi(off[1:3])
		m, _ := strconv.Atoi(off[3:5])
		if h > 14 || m > 59 {
			return t, errors.New("offset out of range")
		}
		secs := h*3600 + m*60
		if off[0] == '-' {
			secs = -secs
		}
		loc = time.FixedZone("", secs)
		t.HasOffset = true
	}
	main, frac := body, ""
	for i := 0; i < len(body); i++ {
		if body[i] == '.' {
			main, frac = body[:i], body[i+1:]
			break
		}
	}
	if !allDigits(main) {
		return DTM{}, errors.New("date/time must be digits")
	}
	switch len(main) {
	case 4:
		t.Precision = PrecisionYear
	case 6:
		t.Precision = PrecisionMonth
	case 8:
		t.Precision = PrecisionDay
	case 10:
		t.Precision = PrecisionHour
	case 12:
		t.Precision = PrecisionMinute
	case 14:
		t.Precision = PrecisionSecond
	default:
		return DTM{}, errors.New("date/time has a wrong number of digits")
	}
	if len(main) < 14 && frac != "" || len(main) == 14 && body != main && (len(frac) < 1 || len(frac) > 4 || !allDigits(frac)) {
		return DTM{}, errors.New("fraction of a second must follow the seconds and have 1 to 4 digits")
	}
	num := func(i, j int, def int) int {
		if len(main) < j {
			return def
		}
		n, _ := strconv.Atoi(main[i:j])
		return n
	}
	year, month, day := num(0, 4, 0), num(4, 6, 1), num(6, 8, 1)
	hour, minute, sec := num(8, 10, 0), num(10, 12, 0), num(12, 14, 0)
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return DTM{}, errors.New("date/time out of range")
	}
	nsec := 0
	if frac != "" {
		n, _ := strconv.Atoi(frac)
		for i := len(frac); i < 9; i++ {
			n *= 10
		}
		nsec = n
		t.Precision = PrecisionFraction
		t.FracDigits = len(frac)
	}
	t.Time = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	return t, nil
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
