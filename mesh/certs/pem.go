package certs

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

const pemCertificate = "CERTIFICATE"

// EncodePEM writes DER certificates as consecutive CERTIFICATE PEM blocks,
// in the order given.
func EncodePEM(chain [][]byte) []byte {
	var b bytes.Buffer
	for _, der := range chain {
		// Writing to a bytes.Buffer with a header-less block cannot fail.
		_ = pem.Encode(&b, &pem.Block{Type: pemCertificate, Bytes: der})
	}
	return b.Bytes()
}

// EncodeChain writes DER certificates as the KNOCK certificateChain carries
// them: one standard padded base64 string each.
func EncodeChain(chain [][]byte) []string {
	out := make([]string, len(chain))
	for i, der := range chain {
		out[i] = protocol.B64.EncodeToString(der)
	}
	return out
}

// DecodeChain reads a certificate chain as KNOCKs carry it and returns the
// DER certificates in order. Each string is either the standard padded
// base64 of one DER certificate (the TS format) or text holding one or more
// CERTIFICATE PEM blocks (the PY format). It checks encodings only; call
// VerifyChain to check the certificates.
func DecodeChain(chain []string) ([][]byte, error) {
	var out [][]byte
	for i, s := range chain {
		t := strings.TrimSpace(s)
		if !strings.HasPrefix(t, "-----BEGIN") {
			der, err := protocol.DecodeB64(t, 0)
			if err != nil {
				return nil, fmt.Errorf("certificate chain: entry %d: %w", i, err)
			}
			if len(der) == 0 {
				return nil, fmt.Errorf("certificate chain: entry %d: empty", i)
			}
			out = append(out, der)
		} else {
			rest := []byte(t)
			n := 0
			for {
				var blk *pem.Block
				blk, rest = pem.Decode(rest)
				if blk == nil {
					break
				}
				if blk.Type != pemCertificate {
					return nil, fmt.Errorf("certificate chain: entry %d: PEM block %q is not a certificate", i, blk.Type)
				}
				if len(blk.Bytes) == 0 {
					return nil, fmt.Errorf("certificate chain: entry %d: empty PEM block", i)
				}
				out = append(out, blk.Bytes)
				n++
			}
			if n == 0 || len(bytes.TrimSpace(rest)) != 0 {
				return nil, fmt.Errorf("certificate chain: entry %d: malformed PEM", i)
			}
		}
		if len(out) > MaxChainLength {
			return nil, fmt.Errorf("certificate chain: more than %d certificates", MaxChainLength)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("certificate chain: empty")
	}
	return out, nil
}
