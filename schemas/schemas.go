// Package schemas holds the JSON Schema documents of AgentMesh, embedded
// in [FS]. It only stores and finds documents; compiling and validating
// them (and the warning, strict and silent modes) belong to the host's
// schema catalogue.
//
// Every document is JSON Schema draft-07: it declares
// "$schema": "http://json-schema.org/draft-07/schema#" and an "$id" equal
// to its schema id, so that a validator can register each document under
// its id.
//
// # Ids and files
//
// A schema id is a slash-separated path such as
// "agentmesh/travel/flight-search/v1". Its file in [FS] is the id followed
// by ".json": "agentmesh/travel/flight-search/v1.json". [File] applies
// this rule, [Open] reads the file, and [IDs] lists every id in [FS].
// An id must be a valid [io/fs] path without backslashes or colons, so
// the same rule can place custom schemas on disk safely.
//
// # Standard schemas
//
// [Standard] lists the three schemas of PROTOCOL.md §7.4: flight search,
// product search and skill bid. They match the published documents
// keyword for keyword (no "required", no "additionalProperties"), with
// one addition: the published documents carry no "$id", and these do.
//
// # Message layer
//
// [Message] describes the plaintext envelope inside the Double Ratchet
// (PROTOCOL.md §7.1), and [Payload] names the schema of each payload type
// (PROTOCOL.md §6.7, §7.3, DESIGN.md §4.7). They require exactly what our
// own producers always send, and they allow additional members
// ("additionalProperties": true) because peers may extend them. A payload
// may repeat its type in a "type" member, which must then match.
//
// # Skills
//
// [SkillManifest] validates an installable skill's skill.json
// (DESIGN.md §5), and [AgentSkill] the repository's own skill.json. Both
// reject unknown members. The alias "skill-manifest" opens [SkillManifest]
// and "agent-skill" opens [AgentSkill].
package schemas

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
)

// FS holds the schema documents, one file per id as described in the
// package documentation.
//
//go:embed agentmesh
var FS embed.FS

// Ids of the standard schemas of PROTOCOL.md §7.4.
const (
	FlightSearch  = "agentmesh/travel/flight-search/v1"
	ProductSearch = "agentmesh/commerce/product-search/v1"
	SkillBid      = "agentmesh/marketplace/skill-bid/v1"
)

// Ids of the message layer and skill schemas.
const (
	// Message is the id of the plaintext envelope schema.
	Message = "agentmesh/message/v1"
	// SkillManifest is the id of the schema of a skill's skill.json.
	SkillManifest = "agentmesh/skill-manifest/v1"
	// AgentSkill is the id of the schema of the AgentMesh skill.json.
	AgentSkill = "agentmesh/agent-skill/v1"
)

// fileExt is appended to an id to name its file.
const fileExt = ".json"

// aliases maps short names accepted by [File] and [Open] to schema ids.
var aliases = map[string]string{
	"skill-manifest": SkillManifest,
	"agent-skill":    AgentSkill,
}

// Standard returns the ids of the standard schemas of PROTOCOL.md §7.4,
// in the order that section lists them.
func Standard() []string {
	return []string{FlightSearch, ProductSearch, SkillBid}
}

// Payload returns the id of the schema of the payload type typ, such as
// "request" or "capability_update": "agentmesh/payload/<typ>/v1". It does
// not check that such a schema exists; [Open] does.
func Payload(typ string) string {
	return "agentmesh/payload/" + typ + "/v1"
}

// IDs returns the ids of all schemas in [FS], sorted.
func IDs() []string {
	return slices.Clone(allIDs())
}

var allIDs = sync.OnceValue(func() []string {
	var ids []string
	// The embedded tree cannot fail to walk; an error would only shorten
	// the list, which the package tests would notice.
	_ = fs.WalkDir(FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if id, ok := strings.CutSuffix(name, fileExt); ok && !d.IsDir() {
			ids = append(ids, id)
		}
		return nil
	})
	slices.Sort(ids)
	return ids
})

// File returns the name in [FS] of the schema id, or of the schema an
// alias stands for. It checks only the form of id, not that the file
// exists. An id of the wrong form gives an error wrapping [fs.ErrInvalid].
func File(id string) (string, error) {
	if target, ok := aliases[id]; ok {
		id = target
	}
	if !fs.ValidPath(id) || id == "." || strings.ContainsAny(id, `\:`) {
		return "", fmt.Errorf("schemas: invalid schema id %q: %w", id, fs.ErrInvalid)
	}
	return id + fileExt, nil
}

// Open returns the document of the schema id, or of the schema an alias
// stands for. An id with no schema gives an error wrapping
// [fs.ErrNotExist]; an id of the wrong form one wrapping [fs.ErrInvalid].
func Open(id string) ([]byte, error) {
	name, err := File(id)
	if err != nil {
		return nil, err
	}
	b, err := FS.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("schemas: no schema %q: %w", id, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("schemas: reading schema %q: %w", id, err)
	}
	return b, nil
}
