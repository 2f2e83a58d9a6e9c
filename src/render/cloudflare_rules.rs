//! Cloudflare Response Header Transform rules (JSON) for an R2 bucket behind a
//! custom domain. (Being written.)

use super::{Rendered, Templates};
use crate::model::Registry;
use crate::settings::Common;
use anyhow::{Result, bail};

pub fn render(_registry: &Registry, _common: &Common, _templates: &Templates) -> Result<Rendered> {
    bail!("registrish-gen cloudflare-rules is not implemented yet")
}
