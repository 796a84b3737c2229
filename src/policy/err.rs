//! Policy validation errors. Internal messages follow the crate style (lowercase, user input in
//! backticks); `aws_message` gives IAM's client-visible wording (IAM.md §1.2).

use std::fmt;

/// Why a policy document was rejected.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("policy is not valid json: {0}")]
    Json(String),
    #[error("policy is empty")]
    Empty,
    #[error("policy has {actual} characters, more than the limit of {limit}")]
    TooLarge { limit: usize, actual: usize },
    #[error("policy contains the character `{0}`, which is not allowed")]
    InvalidCharacter(char),
    #[error("unsupported version `{0}`")]
    UnsupportedVersion(String),
    #[error("policy document must be version 2012-10-17 or greater")]
    VersionRequired,
    #[error("unknown element `{0}`")]
    UnknownElement(String),
    #[error("element `{element}` must be {expected}")]
    WrongType {
        element: String,
        expected: &'static str,
    },
    #[error("policy has no statement")]
    MissingStatement,
    #[error("element `Id` is not allowed in this kind of policy")]
    IdNotAllowed,
    #[error("statement is missing `Effect`")]
    MissingEffect,
    #[error("invalid effect `{0}`")]
    InvalidEffect(String),
    #[error("policy statement must contain actions")]
    MissingActions,
    #[error("policy statement must contain resources")]
    MissingResources,
    #[error("`{0}` and `Not{0}` cannot both be present")]
    Conflicting(&'static str),
    #[error("action `{0}` must be prefaced by a vendor")]
    ActionVendor(String),
    #[error("action `{0}` can contain only one colon")]
    ActionColons(String),
    #[error("resource `{0}` must be in arn format or `*`")]
    ResourceFormat(String),
    #[error("policy variables are allowed only in the resource part of an arn: `{0}`")]
    VariableOutsideResourcePart(String),
    #[error("policy variables are not allowed in `{0}`")]
    VariableNotAllowed(String),
    #[error("invalid policy variable `{0}`")]
    InvalidVariable(String),
    #[error("missing required field principal")]
    PrincipalRequired,
    #[error("policy document should not specify a principal")]
    PrincipalNotAllowed,
    #[error("invalid principal `{0}`")]
    InvalidPrincipal(String),
    #[error("`NotPrincipal` with `Allow` is not supported")]
    NotPrincipalWithAllow,
    #[error("statement id `{0}` must be alphanumeric")]
    InvalidSid(String),
    #[error("statement id `{0}` is not unique")]
    DuplicateSid(String),
    #[error("unknown condition operator `{0}`")]
    UnknownOperator(String),
    #[error("condition key `{0}` must be prefaced by a vendor")]
    ConditionKeyVendor(String),
    #[error("condition `{operator}` on `{key}` has no values")]
    EmptyConditionValues { operator: String, key: String },
    #[error("invalid value `{value}` for `{operator}`: {reason}")]
    InvalidConditionValue {
        operator: String,
        value: String,
        reason: &'static str,
    },
}

impl PolicyError {
    /// IAM's wording for this error (what AWS would show the client).
    pub fn aws_message(&self) -> String {
        const SYNTAX: &str = "Syntax errors in policy.";
        match self {
            Self::TooLarge { limit, .. } => format!("Cannot exceed quota for PolicySize: {limit}"),
            Self::UnsupportedVersion(_) => "The policy must contain a valid version string".into(),
            Self::VersionRequired => "Policy document must be version 2012-10-17 or greater.".into(),
            Self::MissingActions => "Policy statement must contain actions.".into(),
            Self::MissingResources => "Policy statement must contain resources.".into(),
            Self::ActionVendor(_) | Self::ConditionKeyVendor(_) => {
                "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.".into()
            }
            Self::ActionColons(_) => "Actions/Condition can contain only one colon.".into(),
            Self::ResourceFormat(r) => format!("Resource {r} must be in ARN format or \"*\"."),
            Self::PrincipalRequired => "Missing required field Principal".into(),
            Self::PrincipalNotAllowed => "Policy document should not specify a principal.".into(),
            Self::InvalidPrincipal(_) => "Invalid principal in policy".into(),
            Self::InvalidSid(_) => "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*".into(),
            Self::DuplicateSid(_) => "Statement IDs (SID) in a single policy must be unique.".into(),
            Self::Json(_)
            | Self::Empty
            | Self::InvalidCharacter(_)
            | Self::UnknownElement(_)
            | Self::WrongType { .. }
            | Self::MissingStatement
            | Self::IdNotAllowed
            | Self::MissingEffect
            | Self::InvalidEffect(_)
            | Self::Conflicting(_)
            | Self::VariableOutsideResourcePart(_)
            | Self::VariableNotAllowed(_)
            | Self::InvalidVariable(_)
            | Self::NotPrincipalWithAllow
            | Self::UnknownOperator(_)
            | Self::EmptyConditionValues { .. }
            | Self::InvalidConditionValue { .. } => SYNTAX.into(),
        }
    }
}

/// One error, with the statement it was found in.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Zero-based statement index (`None` for document-level errors).
    pub statement: Option<usize>,
    pub error: PolicyError,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.statement {
            Some(i) => write!(f, "statement {i}: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl std::error::Error for ParseError {}

/// Every error found in a document (never empty).
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseErrors(pub(crate) Vec<ParseError>);

impl ParseErrors {
    pub(crate) fn one(statement: Option<usize>, error: PolicyError) -> Self {
        Self(vec![ParseError { statement, error }])
    }

    pub fn errors(&self) -> &[ParseError] {
        &self.0
    }

    /// IAM's wording for the first error.
    pub fn aws_message(&self) -> String {
        self.0.first().map_or_else(
            || "Syntax errors in policy.".into(),
            |e| e.error.aws_message(),
        )
    }
}

impl fmt::Display for ParseErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for e in &self.0 {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseErrors {}
