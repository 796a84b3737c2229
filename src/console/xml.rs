//! A reader for the Query protocol's XML answers (`protocol::query::encode`): elements,
//! text and entities only (no attributes besides the root's namespace, no CDATA).

/// An element: its name, its children, its text.
#[derive(Debug, Default, Clone)]
pub(crate) struct Node {
    pub name: String,
    pub children: Vec<Node>,
    pub text: String,
}

impl Node {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the child named `name` ("" if none).
    pub fn text_of(&self, name: &str) -> String {
        self.child(name).map(|c| c.text.clone()).unwrap_or_default()
    }

    /// The `<member>` elements of the child named `name`.
    pub fn members(&self, name: &str) -> Vec<&Node> {
        self.child(name)
            .map(|c| c.children.iter().filter(|m| m.name == "member").collect())
            .unwrap_or_default()
    }

    /// The first element named `name` at any depth.
    pub fn find(&self, name: &str) -> Option<&Node> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }
}

/// Parse `xml` into its root element (`None` if it is not well formed).
pub(crate) fn parse(xml: &str) -> Option<Node> {
    let mut stack: Vec<Node> = vec![Node::default()];
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        let text = rest.get(..open)?;
        if let Some(top) = stack.last_mut() {
            top.text.push_str(&super::unescape_xml(text));
        }
        let after = rest.get(open + 1..)?;
        let close = after.find('>')?;
        let tag = after.get(..close)?;
        rest = after.get(close + 1..)?;
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let node = stack.pop()?;
            if node.name != name.trim() {
                return None;
            }
            stack.last_mut()?.children.push(node);
        } else if let Some(empty) = tag.strip_suffix('/') {
            let name = empty.split_whitespace().next()?.to_owned();
            stack.last_mut()?.children.push(Node {
                name,
                ..Node::default()
            });
        } else {
            let name = tag.split_whitespace().next()?.to_owned();
            stack.push(Node {
                name,
                ..Node::default()
            });
        }
    }
    let mut doc = stack.pop()?;
    if !stack.is_empty() {
        return None;
    }
    for c in &mut doc.children {
        trim(c);
    }
    doc.children.into_iter().next()
}

/// Drop the indentation between elements: a node with children keeps no text.
fn trim(n: &mut Node) {
    if n.children.is_empty() {
        return;
    }
    n.text.clear();
    for c in &mut n.children {
        trim(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_query_encoder_writes() {
        let out = serde_json::json!({"Users": [{"Name": "a&b", "Tags": []}, {"Name": "c"}], "IsTruncated": false});
        let xml = crate::protocol::query::encode("ns", "ListThings", &out, "rid").unwrap();
        let root = parse(&String::from_utf8(xml).unwrap()).unwrap();
        assert_eq!(root.name, "ListThingsResponse");
        let result = root.child("ListThingsResult").unwrap();
        let users = result.members("Users");
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].text_of("Name"), "a&b");
        assert!(users[0].members("Tags").is_empty());
        assert_eq!(result.text_of("IsTruncated"), "false");
        assert!(parse("<a><b></a>").is_none());
    }
}
