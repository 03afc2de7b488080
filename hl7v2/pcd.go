package hl7v2

import (
	"strconv"
	"strings"
)

// ProfilePCD01 is the MSH-21 message profile identifier of IHE PCD-01 (Communicate PCD Data).
const ProfilePCD01 = "IHE_PCD_001"

// Containment is an IEEE 11073 containment position from OBX-4 in IHE PCD-01,
// <MDS>.<VMD>.<Channel>.<Metric>, such as 1.2.1.3. A zero part means the row describes the
// level above it: 1.0.0.0 is the MDS (the device system), 1.2.0.0 a VMD, 1.2.1.0 a channel.
type Containment struct {
	MDS, VMD, Channel, Metric int
}

// ParseContainment parses a dotted OBX-4 value of one to four non-negative numbers; missing
// trailing parts are zero.
func ParseContainment(s string) (Containment, error) {
	var c Containment
	if s == "" {
		return c, newError(CodeDataType, Location{}, "empty containment")
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return c, newError(CodeDataType, Location{}, "containment has more than four parts")
	}
	dst := []*int{&c.MDS, &c.VMD, &c.Channel, &c.Metric}
	for i, p := range parts {
		if p == "" || len(p) > 6 || !allDigits(p) {
			return Containment{}, newError(CodeDataType, Location{}, "containment parts must be numbers")
		}
		*dst[i], _ = strconv.Atoi(p)
	}
	return c, nil
}

// Level names the level of the containment tree the row is at: "MDS", "VMD", "CHAN" or
// "METRIC".
func (c Containment) Level() string {
	switch {
	case c.Metric != 0:
		return "METRIC"
	case c.Channel != 0:
		return "CHAN"
	case c.VMD != 0:
		return "VMD"
	}
	return "MDS"
}

// String formats the containment as four dotted numbers.
func (c Containment) String() string {
	return strconv.Itoa(c.MDS) + "." + strconv.Itoa(c.VMD) + "." + strconv.Itoa(c.Channel) + "." + strconv.Itoa(c.Metric)
}

// Containment reads the field (OBX-4) as a PCD-01 containment position; an error is a 102 at
// the field.
func (f Field) Containment() (Containment, error) {
	c, err := ParseContainment(f.Value())
	if err != nil {
		return Containment{}, typeError(f.loc, "not an MDS.VMD.CHAN.METRIC containment")
	}
	return c, nil
}
