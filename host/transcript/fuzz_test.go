package transcript

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fuzzSecret and fuzzSession give the key that the records of the seeds
// under testdata/fuzz were sealed with.
var fuzzSecret = bytes.Repeat([]byte{7}, keySize)

const fuzzSession = "sess_fuzz"

// FuzzParseLine feeds arbitrary bytes to the parser of one line. A failure
// must return no item; a record must encode to a line that parses to the
// same record; a plaintext entry must be the line itself, a JSON object.
// Seeds: testdata/fuzz/FuzzParseLine.
func FuzzParseLine(f *testing.F) {
	aead, err := sessionAEAD(fuzzSecret, fuzzSession)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		it, err := parseLine(line)
		if err != nil {
			if it.plain != nil || it.rec.nonce != nil || it.rec.ciphertext != nil {
				t.Fatalf("parseLine returned an item with the error %v", err)
			}
			return
		}
		if it.plain != nil {
			if !bytes.Equal(it.plain, line) || !json.Valid(line) || bytes.TrimLeft(line, " \t\r\n")[0] != '{' {
				t.Fatalf("plaintext entry %q is not the line %q as a JSON object", it.plain, line)
			}
			return
		}
		enc := appendRecord(nil, it.rec)
		again, ok, err := parseCanonical(enc)
		if !ok || err != nil {
			t.Fatalf("the encoded record %s does not parse: %v", enc, err)
		}
		if !bytes.Equal(again.nonce, it.rec.nonce) || !bytes.Equal(again.ciphertext, it.rec.ciphertext) {
			t.Fatalf("record changed through encoding: %s", enc)
		}
		if plain, err := openRecord(aead, it.rec); err == nil {
			parseEntry(plain, fuzzSession) // must not panic
		} else if !errors.Is(err, ErrDecrypt) {
			t.Fatalf("openRecord: %v", err)
		}
	})
}

// FuzzParseFile feeds arbitrary bytes to the parser of a whole transcript
// file and to the decoding of its entries. A failure must be a *FileError
// naming a line; a success must re-encode, without the torn tail, to a
// file that parses to the same lines. Seeds: testdata/fuzz/FuzzParseFile.
func FuzzParseFile(f *testing.F) {
	aead, err := sessionAEAD(fuzzSecret, fuzzSession)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseFile(data)
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) || fe.Line < 1 {
				t.Fatalf("error %v (%T) is not a *FileError naming a line", err, err)
			}
			if c != nil {
				t.Fatal("parseFile returned content with an error")
			}
			return
		}
		if c.end < 0 || c.end > int64(len(data)) {
			t.Fatalf("end %d outside a file of %d bytes", c.end, len(data))
		}
		tail := data[c.end:]
		if c.torn != (len(tail) > 0) || bytes.IndexByte(tail, '\n') >= 0 {
			t.Fatalf("torn %v with the tail %q", c.torn, tail)
		}
		var enc []byte
		plain := 0
		for _, it := range c.items {
			if it.plain != nil {
				enc = append(enc, it.plain...)
				plain++
			} else {
				enc = appendRecord(enc, it.rec)
			}
			enc = append(enc, '\n')
		}
		if plain != c.plain {
			t.Fatalf("plain counts %d, the items hold %d", c.plain, plain)
		}
		again, err := parseFile(enc)
		if err != nil {
			t.Fatalf("the re-encoded file does not parse: %v\n%q", err, enc)
		}
		if again.torn || again.unterminated || again.end != int64(len(enc)) || len(again.items) != len(c.items) {
			t.Fatalf("the re-encoded file parses differently: %+v", again)
		}
		for i, it := range again.items {
			was := c.items[i]
			if !bytes.Equal(it.plain, was.plain) || !bytes.Equal(it.rec.nonce, was.rec.nonce) ||
				!bytes.Equal(it.rec.ciphertext, was.rec.ciphertext) {
				t.Fatalf("line %d changed through re-encoding", i+1)
			}
		}
		entries, _, err := decode(aead, fuzzSession, "fuzz", c, false)
		if err == nil && len(entries) != len(c.items) {
			t.Fatalf("%d entries for %d lines", len(entries), len(c.items))
		}
		var fe *FileError
		if err != nil && (!errors.As(err, &fe) || fe.Line < 1) {
			t.Fatalf("decode error %v is not a *FileError naming a line", err)
		}
	})
}

// TestFuzzSeedsOpen keeps the seeds of FuzzParseFile meaningful: their
// records open under the fuzzing key, so the fuzzer starts from files that
// decode all the way to entries.
func TestFuzzSeedsOpen(t *testing.T) {
	aead, err := sessionAEAD(fuzzSecret, fuzzSession)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"records": 2, "torn": 2, "unterminated": 2, "plaintext": 3} {
		path := filepath.Join("testdata", "fuzz", "FuzzParseFile", name)
		text := string(readFile(t, path))
		lit, ok := strings.CutPrefix(strings.TrimSpace(text), "go test fuzz v1\n[]byte(")
		lit, ok2 := strings.CutSuffix(lit, ")")
		data, err := strconv.Unquote(lit)
		if !ok || !ok2 || err != nil {
			t.Fatalf("%s: not a corpus file of one []byte: %v", path, err)
		}
		c, err := parseFile([]byte(data))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		entries, _, err := decode(aead, fuzzSession, path, c, false)
		if err != nil || len(entries) != want {
			t.Errorf("%s: %d entries, %v; want %d", path, len(entries), err, want)
		}
	}
}
