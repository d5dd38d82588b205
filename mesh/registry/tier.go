package registry

// Tier is an agent's trust tier as the registry names it on the wire.
//
// The original also numbers tiers by level (PROTOCOL.md §8.4): verified and
// organization agents are level 1, anonymous agents level 2.
type Tier string

// The registry's tiers.
const (
	TierAnonymous    Tier = "anonymous"
	TierVerified     Tier = "verified"
	TierOrganization Tier = "organization"
)

// Valid reports whether t is one of the registry's tiers.
func (t Tier) Valid() bool {
	switch t {
	case TierAnonymous, TierVerified, TierOrganization:
		return true
	}
	return false
}

// Level returns the numeric level of t: 1 for verified and organization
// agents, 2 for anonymous ones, 0 for an unknown tier.
func (t Tier) Level() int {
	switch t {
	case TierVerified, TierOrganization:
		return 1
	case TierAnonymous:
		return 2
	}
	return 0
}
