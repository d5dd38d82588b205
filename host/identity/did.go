package identity

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Multicodec codes of the public keys in a DID document (the multiformats
// table): a multibase key is "z" + base58btc(uvarint(code) ‖ raw key).
const (
	MulticodecEd25519Pub uint64 = 0xed
	MulticodecX25519Pub  uint64 = 0xec
)

// didContexts is the JSON-LD context of an AgentMesh DID document.
var didContexts = [...]string{
	"https://www.w3.org/ns/did/v1",
	"https://w3id.org/security/suites/ed25519-2020/v1",
	"https://w3id.org/security/suites/x25519-2020/v1",
}

// Fragments of the verification methods and the service in the document;
// the same as the registry's (PROTOCOL.md §1.6).
const (
	signingKeyFragment      = "#signing-key"
	keyAgreementKeyFragment = "#key-agreement-key"
	relayFragment           = "#relay"
)

// didTimeLayout is the W3C DID Core form of created and updated: UTC, whole
// seconds.
const didTimeLayout = "2006-01-02T15:04:05Z"

// DIDDocument is a W3C DID document for did:agentmesh:<AMID>. Unlike the
// registry's document (PROTOCOL.md §1.6, §13 W-25), its keys are real
// multibase: Ed25519VerificationKey2020 and X25519KeyAgreementKey2020 values
// starting "z6Mk" and "z6LS". Encode it with encoding/json; it is not signed.
type DIDDocument struct {
	Context            []string             `json:"@context"`
	ID                 string               `json:"id"`
	Controller         string               `json:"controller"`
	VerificationMethod []VerificationMethod `json:"verificationMethod"`
	Authentication     []string             `json:"authentication"`
	AssertionMethod    []string             `json:"assertionMethod"`
	KeyAgreement       []string             `json:"keyAgreement"`
	// Service lists the agent's relay; it is omitted when the relay is not
	// known.
	Service []DIDService `json:"service,omitempty"`
	// Created and Updated are W3C DID Core timestamps (UTC, whole seconds):
	// when the identity was created and when its keys last changed.
	Created string `json:"created"`
	Updated string `json:"updated"`
	// VersionID counts key changes, starting at "1". DID Core defines
	// versionId as a string, so the integer is written in decimal as one.
	VersionID string `json:"versionId"`
}

// VerificationMethod is a public key in a DID document.
type VerificationMethod struct {
	ID                 string `json:"id"`
	Type               string `json:"type"`
	Controller         string `json:"controller"`
	PublicKeyMultibase string `json:"publicKeyMultibase"`
}

// DIDService is a service endpoint in a DID document.
type DIDService struct {
	ID              string `json:"id"`
	Type            string `json:"type"`
	ServiceEndpoint string `json:"serviceEndpoint"`
}

// DIDDocument builds the agent's DID document from the identity's current
// keys, its creation time, the time its keys last changed and its DID
// version ([Identity.DIDVersion]). relayEndpoint, when not empty, is listed
// as the AgentMeshRelay service. The version counts key changes only: a
// different relay endpoint does not change it.
func (id *Identity) DIDDocument(relayEndpoint string) *DIDDocument {
	did := id.DID()
	signing := did + signingKeyFragment
	agreement := did + keyAgreementKeyFragment
	doc := &DIDDocument{
		Context:    slices.Clone(didContexts[:]),
		ID:         did,
		Controller: did,
		VerificationMethod: []VerificationMethod{
			{
				ID:                 signing,
				Type:               "Ed25519VerificationKey2020",
				Controller:         did,
				PublicKeyMultibase: MultibaseKey(MulticodecEd25519Pub, id.SigningPublicKey()),
			},
			{
				ID:                 agreement,
				Type:               "X25519KeyAgreementKey2020",
				Controller:         did,
				PublicKeyMultibase: MultibaseKey(MulticodecX25519Pub, id.ExchangePublicKey().Bytes()),
			},
		},
		Authentication:  []string{signing},
		AssertionMethod: []string{signing},
		KeyAgreement:    []string{agreement},
		Created:         id.createdAt.UTC().Format(didTimeLayout),
		Updated:         id.didUpdated.UTC().Format(didTimeLayout),
		VersionID:       strconv.Itoa(id.didVersion),
	}
	if relayEndpoint != "" {
		doc.Service = []DIDService{{ID: did + relayFragment, Type: "AgentMeshRelay", ServiceEndpoint: relayEndpoint}}
	}
	return doc
}

// MultibaseKey encodes a public key as a multibase string: "z", then base58btc
// of the unsigned-varint multicodec code followed by the raw key.
func MultibaseKey(codec uint64, key []byte) string {
	b := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(key)), codec)
	return "z" + protocol.EncodeBase58(append(b, key...))
}

// maxMultibaseLen bounds the input of ParseMultibaseKey; a 32-byte key with
// a two-byte code is 48 characters.
const maxMultibaseLen = 128

// ParseMultibaseKey decodes a key written by [MultibaseKey]. It accepts only
// base58btc ("z"), a minimally encoded code, and the two codes of a DID
// document, [MulticodecEd25519Pub] and [MulticodecX25519Pub], each with a
// 32-byte key.
func ParseMultibaseKey(s string) (codec uint64, key []byte, err error) {
	if len(s) > maxMultibaseLen {
		return 0, nil, fmt.Errorf("multibase key is %d characters, limit %d", len(s), maxMultibaseLen)
	}
	body, ok := strings.CutPrefix(s, "z")
	if !ok {
		return 0, nil, errors.New("multibase key does not start with \"z\" (base58btc)")
	}
	b, err := protocol.DecodeBase58(body)
	if err != nil {
		return 0, nil, fmt.Errorf("multibase key: %w", err)
	}
	codec, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, errors.New("multibase key: malformed multicodec prefix")
	}
	if n != len(binary.AppendUvarint(nil, codec)) {
		return 0, nil, errors.New("multibase key: multicodec prefix is not minimally encoded")
	}
	key = b[n:]
	switch codec {
	case MulticodecEd25519Pub, MulticodecX25519Pub:
		if len(key) != ed25519.PublicKeySize {
			return 0, nil, fmt.Errorf("multibase key: %d key bytes after multicodec 0x%x, want 32", len(key), codec)
		}
	default:
		return 0, nil, fmt.Errorf("multibase key: unsupported multicodec 0x%x", codec)
	}
	return codec, key, nil
}
