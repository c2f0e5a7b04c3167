#!/usr/bin/env bash
# Once per AWS account: the experiment bucket, the head's and the workers' roles and instance
# profiles (policies in deploy/iam/), and the security group `ray up` uses. Safe to re-run: what
# exists is kept, the role policies are put again (so an edited policy file takes effect).
#
#   SSH_CIDR=$(curl -s https://checkip.amazonaws.com)/32 deploy/setup_account.sh
#
# SSH_CIDR is the address range allowed to ssh to the nodes (`ray up`, `ray exec`, `ray attach`);
# nothing else is opened to the outside. Settings: deploy/cluster.env.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/cluster.env"
: "${SSH_CIDR:?set SSH_CIDR to the address range allowed to ssh to the nodes, e.g. SSH_CIDR=\$(curl -s https://checkip.amazonaws.com)/32}"
case "$SSH_CIDR" in
  0.0.0.0/0|::/0) echo "SSH_CIDR=$SSH_CIDR would open ssh to the whole internet; give your own range" >&2; exit 1 ;;
esac
region=(--region "$AWS_REGION")
account=$(aws sts get-caller-identity --query Account --output text)

render() {  # a policy file of deploy/iam/ with this account's names filled in
  sed -e "s/{{bucket}}/$EXPERIMENT_BUCKET/g" -e "s/{{account}}/$account/g" \
      -e "s/{{cluster}}/$CLUSTER_NAME/g" -e "s/{{region}}/$AWS_REGION/g" "$here/iam/$1"
}

# The bucket, in the cluster's region (without --region, `s3 mb` uses the CLI's default region).
if aws s3api head-bucket --bucket "$EXPERIMENT_BUCKET" >/dev/null 2>&1; then
  echo "bucket s3://$EXPERIMENT_BUCKET exists"
else
  aws s3 mb "s3://$EXPERIMENT_BUCKET" "${region[@]}"
fi

# Two roles: the head launches workers (EC2, iam:PassRole on the worker role only) and both read
# and write the experiment bucket only.
created_profile=0
for node in head worker; do
  name="$CLUSTER_NAME-$node"
  if ! aws iam get-role --role-name "$name" >/dev/null 2>&1; then
    aws iam create-role --role-name "$name" \
      --assume-role-policy-document "file://$here/iam/ec2-trust.json" >/dev/null
    echo "role $name created"
  fi
  aws iam put-role-policy --role-name "$name" --policy-name "$name" \
    --policy-document "$(render "$node-policy.json")"
  if ! aws iam get-instance-profile --instance-profile-name "$name" >/dev/null 2>&1; then
    aws iam create-instance-profile --instance-profile-name "$name" >/dev/null
    aws iam add-role-to-instance-profile --instance-profile-name "$name" --role-name "$name"
    echo "instance profile $name created"
    created_profile=1
  fi
done

# The security group (in the default VPC, where `ray up` places the nodes): every port between the
# cluster's nodes, ssh from SSH_CIDR only. `ray up` finds it by name (provider.security_group in
# cluster.yaml) and, as it already has rules, adds none of its own (Ray's default opens ssh to
# 0.0.0.0/0).
sg_name="$CLUSTER_NAME-nodes"
vpc=$(aws ec2 describe-vpcs "${region[@]}" --filters Name=isDefault,Values=true \
  --query 'Vpcs[0].VpcId' --output text)
sg=$(aws ec2 describe-security-groups "${region[@]}" \
  --filters "Name=vpc-id,Values=$vpc" "Name=group-name,Values=$sg_name" \
  --query 'SecurityGroups[0].GroupId' --output text)
if [ "$sg" = "None" ] || [ -z "$sg" ]; then
  sg=$(aws ec2 create-security-group "${region[@]}" --vpc-id "$vpc" --group-name "$sg_name" \
    --description "Ray cluster $CLUSTER_NAME: node to node, ssh from $SSH_CIDR" \
    --query GroupId --output text)
  aws ec2 authorize-security-group-ingress "${region[@]}" --group-id "$sg" \
    --ip-permissions "IpProtocol=-1,UserIdGroupPairs=[{GroupId=$sg}]" >/dev/null
  aws ec2 authorize-security-group-ingress "${region[@]}" --group-id "$sg" \
    --ip-permissions "IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=$SSH_CIDR}]" >/dev/null
  echo "security group $sg_name ($sg) created: ssh from $SSH_CIDR"
else
  echo "security group $sg_name ($sg) exists; its ssh range is kept (aws ec2 describe-security-groups --group-ids $sg)"
fi

if [ "$created_profile" = 1 ]; then
  # EC2 refuses a new instance profile for a few seconds after it is created.
  sleep "${IAM_PROPAGATION_WAIT_S:-15}"
fi
echo "done: ray up cluster.yaml"
