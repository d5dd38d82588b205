package skills

import "strings"

// compareVersions compares two Semantic Versioning 2.0.0 strings by
// precedence (semver.org §11): -1 if a < b, 0 if equal, +1 if a > b. Build
// metadata is ignored. Both strings must already have passed the manifest's
// version pattern; a malformed part compares as if it were text.
func compareVersions(a, b string) int {
	a, _, _ = strings.Cut(a, "+")
	b, _, _ = strings.Cut(b, "+")
	aCore, aPre, aHasPre := strings.Cut(a, "-")
	bCore, bPre, bHasPre := strings.Cut(b, "-")
	aNums := strings.Split(aCore, ".")
	bNums := strings.Split(bCore, ".")
	for i := 0; i < len(aNums) && i < len(bNums); i++ {
		if c := compareNumeric(aNums[i], bNums[i]); c != 0 {
			return c
		}
	}
	if c := len(aNums) - len(bNums); c != 0 {
		return sign(c)
	}
	switch {
	case !aHasPre && !bHasPre:
		return 0
	case !aHasPre:
		return 1 // a release ranks above its pre-releases
	case !bHasPre:
		return -1
	}
	aIDs := strings.Split(aPre, ".")
	bIDs := strings.Split(bPre, ".")
	for i := 0; i < len(aIDs) && i < len(bIDs); i++ {
		if c := comparePrerelease(aIDs[i], bIDs[i]); c != 0 {
			return c
		}
	}
	return sign(len(aIDs) - len(bIDs))
}

// compareNumeric compares two decimal strings without leading zeros, of any
// length.
func compareNumeric(a, b string) int {
	if len(a) != len(b) {
		return sign(len(a) - len(b))
	}
	return strings.Compare(a, b)
}

// comparePrerelease compares pre-release identifiers: numeric ones
// numerically and below alphanumeric ones, which compare in ASCII order.
func comparePrerelease(a, b string) int {
	aNum, bNum := isDigits(a), isDigits(b)
	switch {
	case aNum && bNum:
		return compareNumeric(a, b)
	case aNum:
		return -1
	case bNum:
		return 1
	}
	return strings.Compare(a, b)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
