package session

import (
	"slices"
	"strconv"
	"strings"
)

// maxCapabilityVersion bounds the version number of a capability; a larger
// "/v<N>" suffix makes the capability non-versioned.
const maxCapabilityVersion = 1 << 30

// splitCapability splits a versioned capability such as
// "agentmesh/travel/flight-search/v2" into its schema family
// ("agentmesh/travel/flight-search") and version (2). ok is false for a
// capability without a "/v<N>" suffix, such as "text".
func splitCapability(c string) (family string, version int, ok bool) {
	i := strings.LastIndex(c, "/v")
	if i <= 0 {
		return "", 0, false
	}
	digits := c[i+2:]
	if len(digits) == 0 || len(digits) > 10 {
		return "", 0, false
	}
	for _, d := range digits {
		if d < '0' || d > '9' {
			return "", 0, false
		}
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n > maxCapabilityVersion {
		return "", 0, false
	}
	return c[:i], n, true
}

// Negotiate matches the capabilities a peer offers against those we
// support (PROTOCOL.md §6.7).
//
// A versioned capability ("<family>/v<N>") offered by the peer stands for
// every version of its family up to N: for each family, accepted holds the
// highest version we support that is at most the highest the peer offered,
// written as in supported. An offered "…/v3" against supported "…/v1" and
// "…/v2" accepts "…/v2", as the Python client's select_common_version
// picks the highest common version. We accept only versions supported
// lists: supporting "…/v2" does not imply "…/v1".
//
// A non-versioned capability ("text", "json") is accepted when supported
// lists it exactly. Every other offered capability is rejected, as offered,
// once. Both lists are sorted and free of duplicates; nil when empty.
func Negotiate(offered, supported []string) (accepted, rejected []string) {
	exact := make(map[string]bool)
	versions := make(map[string]map[int]string) // family → version → as written
	for _, s := range supported {
		if fam, v, ok := splitCapability(s); ok {
			if versions[fam] == nil {
				versions[fam] = make(map[int]string)
			}
			if _, dup := versions[fam][v]; !dup {
				versions[fam][v] = s
			}
			continue
		}
		exact[s] = true
	}

	maxOffered := make(map[string]int) // family → highest version offered
	var plain []string
	for _, o := range offered {
		if fam, v, ok := splitCapability(o); ok {
			if cur, seen := maxOffered[fam]; !seen || v > cur {
				maxOffered[fam] = v
			}
			continue
		}
		plain = append(plain, o)
	}

	chosen := make(map[string]bool) // families with a common version
	for fam, top := range maxOffered {
		best := -1
		for v := range versions[fam] {
			if v <= top && v > best {
				best = v
			}
		}
		if best >= 0 {
			chosen[fam] = true
			accepted = append(accepted, versions[fam][best])
		}
	}
	for _, p := range plain {
		if exact[p] {
			accepted = append(accepted, p)
		} else {
			rejected = append(rejected, p)
		}
	}
	for _, o := range offered {
		if fam, _, ok := splitCapability(o); ok && !chosen[fam] {
			rejected = append(rejected, o)
		}
	}
	return sortedUnique(accepted), sortedUnique(rejected)
}

func sortedUnique(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// NoCommon reports whether a negotiation accepted nothing. The session
// then goes on with raw messages, which the host should log as a warning
// rather than refuse.
func NoCommon(accepted []string) bool { return len(accepted) == 0 }
