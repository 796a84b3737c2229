//! GetRandomPassword.

use serde::{Deserialize, Serialize};

use super::values::OutValue;
use super::{Authorized, Ctx, Operation, Target, Targeted};
use crate::error::ApiError;
use crate::secrets::password::{self, PasswordSpec};

/// The request: `PasswordSpec`'s members, but unknown members are ignored as AWS does.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub password_length: Option<i64>,
    pub exclude_characters: Option<String>,
    pub exclude_numbers: Option<bool>,
    pub exclude_punctuation: Option<bool>,
    pub exclude_uppercase: Option<bool>,
    pub exclude_lowercase: Option<bool>,
    pub include_space: Option<bool>,
    pub require_each_included_type: Option<bool>,
}

impl Targeted for Input {
    fn target(&self) -> Target {
        Target::Any
    }
}

impl From<Input> for PasswordSpec {
    fn from(i: Input) -> Self {
        Self {
            password_length: i.password_length,
            exclude_characters: i.exclude_characters,
            exclude_numbers: i.exclude_numbers,
            exclude_punctuation: i.exclude_punctuation,
            exclude_uppercase: i.exclude_uppercase,
            exclude_lowercase: i.exclude_lowercase,
            include_space: i.include_space,
            require_each_included_type: i.require_each_included_type,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub random_password: OutValue,
}

#[derive(Debug)]
pub struct GetRandomPassword;

impl Operation for GetRandomPassword {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "GetRandomPassword";
    const ACTION: &'static str = "secretsmanager:GetRandomPassword";
    const READ_ONLY: bool = true;

    fn validate(_input: &Input) -> Result<(), ApiError> {
        // The model limits (length 1..=4096, ExcludeCharacters ≤ 4096) are checked by
        // `password::generate`, with AWS's aggregated wording.
        Ok(())
    }

    async fn handle(_ctx: &Ctx, _auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let mut generated = password::generate(&input.into())?;
        // Moves the buffer (no copy) into a value that is zeroized on drop.
        let random_password = OutValue(std::mem::take(&mut *generated));
        Ok(Output { random_password })
    }
}
