"""CDK app: builds the stacks from cdk.json context.

The API and model stacks land with the infrastructure issue; until then this app
synthesizes nothing."""

import aws_cdk as cdk

app = cdk.App()
app.synth()
