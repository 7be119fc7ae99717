package propel

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Propel's files are small XML documents read whole into a tree of
// elements that keep their lines, so that every message can point at one.

// element is an XML element with its text and the line it starts on.
type element struct {
	name     string
	attrs    []xml.Attr
	line     int
	text     []byte
	textLine int // the line of the first character of text that is not white space
	children []*element
}

// attr returns the value of the attribute name (without a namespace).
func (e *element) attr(name string) (string, bool) {
	for _, a := range e.attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

// child returns the first child element called name, or nil.
func (e *element) child(name string) *element {
	for _, c := range e.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// all returns the child elements called name.
func (e *element) all(name string) []*element {
	var out []*element
	for _, c := range e.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// xmlFault says where and why a document could not be read. Its message
// is encoding/xml's, which may quote the document.
type xmlFault struct {
	line int
	msg  string
}

// readXML parses a document into elements. A document without an element
// gives a nil root and no fault.
func readXML(data []byte) (*element, *xmlFault) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.CharsetReader = charsetReader
	var root *element
	var stack []*element
	for {
		line, _ := dec.InputPos()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, &xmlFault{se.Line, se.Msg}
			}
			return nil, &xmlFault{line, err.Error()}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			e := &element{name: t.Name.Local, attrs: t.Attr, line: line}
			if len(stack) == 0 {
				if root != nil {
					return nil, &xmlFault{line, "a second root element"}
				}
				root = e
			} else {
				parent := stack[len(stack)-1]
				parent.children = append(parent.children, e)
			}
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				continue
			}
			top := stack[len(stack)-1]
			if top.textLine == 0 {
				if text := bytes.TrimSpace(t); len(text) > 0 {
					top.textLine = line + bytes.Count(t[:bytes.Index(t, text)], []byte("\n"))
				}
			}
			top.text = append(top.text, t...)
		}
	}
	return root, nil
}

// charsetReader decodes the single-byte encodings a Propel file may
// declare besides UTF-8.
func charsetReader(charset string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "us-ascii", "ascii":
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		for _, c := range b {
			out.WriteRune(rune(c))
		}
		return &out, nil
	}
	return nil, fmt.Errorf("encoding %q is not supported: convert the file to UTF-8", charset)
}
