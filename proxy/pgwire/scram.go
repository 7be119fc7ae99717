// Package pgwire is the PostgreSQL wire-protocol front of tandem's proxy
// (version 3 of the protocol, through pgx's pgproto3). This first part
// authenticates clients: SCRAM-SHA-256 against password verifiers, the
// form PostgreSQL itself stores, so that no password is kept in a config
// in plain text.
package pgwire

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Verifier is a password's SCRAM-SHA-256 verifier: what a server keeps to
// check a client's proof without the password. Its text form is
// PostgreSQL's (pg_authid.rolpassword):
//
//	SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
//
// (base64), so a hash PostgreSQL made can be copied into a tandem config.
type Verifier struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
	// Trust lets the user in without a password, from a loopback address
	// only (a users file line name:trust); the keys are then unused.
	Trust bool
}

// scramIterations is how many PBKDF2 rounds a new verifier takes:
// PostgreSQL's default.
const scramIterations = 4096

// NewVerifier makes the verifier of password, with a fresh random salt.
func NewVerifier(password string) (Verifier, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return Verifier{}, err
	}
	return verifierOf(password, salt, scramIterations)
}

func verifierOf(password string, salt []byte, iterations int) (Verifier, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return Verifier{}, err
	}
	clientKey := hmacSHA256(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	return Verifier{Iterations: iterations, Salt: salt, StoredKey: stored[:], ServerKey: hmacSHA256(salted, "Server Key")}, nil
}

// String is the verifier's text form (PostgreSQL's).
func (v Verifier) String() string {
	if v.Trust {
		return "trust"
	}
	b := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", v.Iterations, b(v.Salt), b(v.StoredKey), b(v.ServerKey))
}

// ParseVerifier reads a verifier's text form. The error says what is
// wrong without repeating the text (a verifier is a secret of sorts).
func ParseVerifier(s string) (Verifier, error) {
	rest, ok := strings.CutPrefix(s, "SCRAM-SHA-256$")
	if !ok {
		return Verifier{}, errors.New("not a SCRAM-SHA-256 verifier: want SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (tandem proxy hash-password makes one)")
	}
	params, keys, ok := strings.Cut(rest, "$")
	iter, salt, ok1 := strings.Cut(params, ":")
	stored, server, ok2 := strings.Cut(keys, ":")
	if !ok || !ok1 || !ok2 {
		return Verifier{}, errors.New("malformed SCRAM-SHA-256 verifier: want SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")
	}
	var v Verifier
	var err error
	if v.Iterations, err = strconv.Atoi(iter); err != nil || v.Iterations < 1 {
		return Verifier{}, errors.New("SCRAM-SHA-256 verifier: the iteration count is not a positive number")
	}
	for _, f := range []struct {
		what string
		text string
		dst  *[]byte
		size int
	}{{"salt", salt, &v.Salt, 0}, {"StoredKey", stored, &v.StoredKey, sha256.Size}, {"ServerKey", server, &v.ServerKey, sha256.Size}} {
		b, err := base64.StdEncoding.DecodeString(f.text)
		if err != nil || len(b) == 0 || (f.size > 0 && len(b) != f.size) {
			return Verifier{}, fmt.Errorf("SCRAM-SHA-256 verifier: the %s is not valid base64 of the right length", f.what)
		}
		*f.dst = b
	}
	return v, nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// scramServer is the server's side of one SCRAM-SHA-256 exchange
// (RFC 5802, RFC 7677), without channel binding.
type scramServer struct {
	v               Verifier
	clientFirstBare string
	serverFirst     string
	nonce           string
}

// errAuth: the client's proof does not match (a wrong password, or no
// such user: both look the same to the client).
var errAuth = errors.New("password authentication failed")

// first reads the client-first-message and returns the server-first.
func (s *scramServer) first(clientFirst string) (string, error) {
	gs2, bare, ok := strings.Cut(clientFirst, ",,")
	if !ok {
		return "", errors.New("SCRAM: malformed client-first-message")
	}
	switch {
	case gs2 == "n", gs2 == "y":
	case strings.HasPrefix(gs2, "p="):
		return "", errors.New("SCRAM: channel binding is not supported: connect with channel_binding=disable or prefer")
	default:
		return "", errors.New("SCRAM: malformed GS2 header")
	}
	var cnonce string
	for _, attr := range strings.Split(bare, ",") {
		if v, ok := strings.CutPrefix(attr, "r="); ok {
			cnonce = v
		}
	}
	if cnonce == "" || strings.ContainsAny(cnonce, ", ") {
		return "", errors.New("SCRAM: client-first-message without a nonce")
	}
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	s.clientFirstBare = bare
	s.nonce = cnonce + base64.RawStdEncoding.EncodeToString(b)
	s.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", s.nonce, base64.StdEncoding.EncodeToString(s.v.Salt), s.v.Iterations)
	return s.serverFirst, nil
}

// final checks the client-final-message's proof and returns the
// server-final-message.
func (s *scramServer) final(clientFinal string) (string, error) {
	i := strings.LastIndex(clientFinal, ",p=")
	if i < 0 {
		return "", errors.New("SCRAM: client-final-message without a proof")
	}
	withoutProof, proofText := clientFinal[:i], clientFinal[i+3:]
	var nonce string
	for _, attr := range strings.Split(withoutProof, ",") {
		if v, ok := strings.CutPrefix(attr, "r="); ok {
			nonce = v
		}
	}
	if nonce != s.nonce {
		return "", errors.New("SCRAM: the client-final-message's nonce is not this exchange's")
	}
	proof, err := base64.StdEncoding.DecodeString(proofText)
	if err != nil || len(proof) != sha256.Size {
		return "", errors.New("SCRAM: malformed proof")
	}
	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	signature := hmacSHA256(s.v.StoredKey, authMessage)
	clientKey := make([]byte, sha256.Size)
	for i := range clientKey {
		clientKey[i] = proof[i] ^ signature[i]
	}
	stored := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(stored[:], s.v.StoredKey) != 1 {
		return "", errAuth
	}
	return "v=" + base64.StdEncoding.EncodeToString(hmacSHA256(s.v.ServerKey, authMessage)), nil
}
