"""What deploys the service rather than runs it: the resources it needs (`resources`),
their provisioning (`provision`), the IAM policies of each program (`iam`), the
CloudFormation template generated from both (`template`) and the embedded emulator the
tests and the demo run against (`emulator`). The programs at run time need only the
resources' names (`resources`), through their settings."""
